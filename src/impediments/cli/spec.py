"""SPEC.py files for ``impediments doctor`` / ``checkup``, and the short training run under the monitor.

A spec is an ordinary Python file defining:

- ``model()`` -> ``nn.Module`` (required);
- ``data()`` -> a dataset name (``"digits"``, ``"mnist1d"``, ...), an
  :class:`impediments.data.Dataset`, or a tuple ``(X, y)`` of tensors (required);
- ``optimizer(params)`` -> ``torch.optim.Optimizer`` (optional; default SGD lr 0.1);
- ``loss_fn(output, target)`` (optional; default cross-entropy for integer targets, else MSE);
- ``BATCH_SIZE`` and ``STEPS`` (optional integers);
- the loop itself, to show training-loop bugs (optional): ``batches(X, y, batch_size, seed)`` -> an
  iterator of ``(xb, yb)`` (default: reshuffled epochs); ``scheduler(optimizer)`` -> an LR scheduler
  (default loop: stepped once per epoch); ``train_step(model, optimizer, loss_fn, xb, yb, step)`` ->
  the loss, replacing the default ``zero_grad``/``backward``/``step`` (it also gets the scheduler as a
  7th argument when ``scheduler`` is defined, and then steps it itself).

It is loaded as a module (``importlib``), not through ``exec`` of strings.
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from impediments.doctor.checkup import default_loss
from impediments.train import Setup, build, default_optimizer, run_steps, train_mode


class SpecError(ValueError):
    """A spec that cannot be used (missing file or names, raising code, wrong return types)."""


@dataclass
class Spec:
    path: Path
    module: object

    def get(self, name, default=None):
        return getattr(self.module, name, default)


def load_spec(path) -> Spec:
    """Import the spec file at ``path``.

    Raises:
        SpecError: if the file is missing, raises on import, or lacks ``model``/``data``.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist")
    name = f"_impediments_spec_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None:
        raise SpecError(f"spec file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except Exception as exc:
        raise SpecError(f"spec {str(path)!r} raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(name, None)
    absent = [n for n in ("model", "data") if not callable(getattr(module, n, None))]
    if absent:
        raise SpecError(f"spec {str(path)!r} must define callable(s) {', '.join(absent)}(); "
                        "required: model() -> nn.Module and data() -> dataset name or (X, y)")
    return Spec(path, module)


def _call(spec: Spec, name: str, *args):
    try:
        return getattr(spec.module, name)(*args)
    except Exception as exc:
        raise SpecError(f"spec {str(spec.path)!r}: {name}() raised {type(exc).__name__}: {exc}") from exc


_PACKAGE = Path(__file__).resolve().parents[1]          # src/impediments
_PASS_THROUGH = {"__torch_function__"}                  # the monitor's torch-function mode only forwards the call


def blame_spec(spec: Spec, exc: BaseException) -> SpecError | None:
    """A one-line :class:`SpecError` for ``exc``, raised while the spec's model trained or was checked,
    naming the spec's file and the line of its own code where it failed; ``None`` for a failure in
    impediments itself (a bug to report with its traceback, not a usage error).

    The line is the deepest frame of the traceback in the spec file (e.g. the ``forward`` line that
    multiplies mismatched shapes); when the failure lies wholly inside torch (an ``nn.Sequential`` of
    mismatched layers), the line of the spec's ``model()`` that built the model.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    own = Path(spec.path).resolve()
    in_spec = [f for f in frames if Path(f.filename).resolve() == own]
    if in_spec:
        where = f"{spec.path}:{in_spec[-1].lineno} (in {in_spec[-1].name})"
    else:
        deepest = Path(frames[-1].filename).resolve() if frames else None
        if deepest is not None and deepest.is_relative_to(_PACKAGE) and frames[-1].name not in _PASS_THROUGH:
            return None
        in_default_loss = any(f.name == "default_loss" and Path(f.filename).resolve().is_relative_to(_PACKAGE)
                              for f in frames)
        culprit = "data" if in_default_loss else "model"
        build = getattr(spec.module, culprit, None)
        line = build.__code__.co_firstlineno if hasattr(build, "__code__") else 1
        where = (f"{spec.path}:{line} (the targets of data() in the default loss: cross-entropy for integer "
                 "targets, else MSE; or define loss_fn)" if in_default_loss
                 else f"{spec.path}:{line} (the model built by model())")
    message = (str(exc).strip().splitlines() or [""])[0]
    return SpecError(f"{where}: {type(exc).__name__}: {message}")


def build_model(spec: Spec) -> nn.Module:
    model = _call(spec, "model")
    if not isinstance(model, nn.Module):
        raise SpecError(f"spec {str(spec.path)!r}: model() must return an nn.Module, got {type(model).__name__}")
    return model


def build_data(spec: Spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The training inputs and targets named by ``data()``."""
    data = _call(spec, "data")
    if isinstance(data, str):
        from impediments.data import load_dataset

        try:
            data = load_dataset(data)
        except Exception as exc:
            raise SpecError(f"spec {str(spec.path)!r}: data() named {data!r}: {exc}") from exc
    if hasattr(data, "X_train") and hasattr(data, "y_train"):
        return data.X_train, data.y_train
    if (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)
            and len(data[0]) == len(data[1]) and len(data[0]) > 0):
        return data[0], data[1]
    raise SpecError(f"spec {str(spec.path)!r}: data() must return a dataset name, a Dataset, or a tuple (X, y) "
                    f"of tensors with the same non-zero length; got {type(data).__name__}")


def _optimizer_fn(spec: Spec):
    """The spec's ``optimizer(params)``, checked to return an optimizer; SGD lr 0.1 when it defines none."""
    if not callable(spec.get("optimizer")):
        return default_optimizer

    def make(params) -> torch.optim.Optimizer:
        opt = _call(spec, "optimizer", params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise SpecError(f"spec {str(spec.path)!r}: optimizer(params) must return a torch.optim.Optimizer")
        return opt
    return make


def spec_setup(spec: Spec, X: torch.Tensor, y: torch.Tensor, *, steps: int, batch_size: int) -> Setup:
    """The spec as a :class:`~impediments.train.setup.Setup` on ``(X, y)``, with the defaults (SGD lr 0.1,
    :func:`~impediments.doctor.checkup.default_loss`, reshuffled epochs, the plain step).

    Raises:
        SpecError: ``loss_fn``, ``train_step``, ``batches`` or ``scheduler`` defined but not callable.
    """
    for name in ("loss_fn", "train_step", "batches", "scheduler"):
        fn = spec.get(name)
        if fn is not None and not callable(fn):
            raise SpecError(f"spec {str(spec.path)!r}: {name} must be callable, got {type(fn).__name__}")
    scheduler = (lambda opt: _call(spec, "scheduler", opt)) if spec.get("scheduler") is not None else None
    return Setup(model_fn=lambda: build_model(spec), X=X, y=y, loss_fn=spec.get("loss_fn") or default_loss,
                 opt_fn=_optimizer_fn(spec), steps=int(steps), batch_size=int(batch_size),
                 batches_fn=spec.get("batches"), scheduler_fn=scheduler, step_fn=spec.get("train_step"))


def train_under_monitor(setup: Setup, *, seed: int = 0, model: nn.Module | None = None, optimizer=None,
                        live=False):
    """Train ``setup`` under :func:`impediments.watch` with :func:`~impediments.train.loop.run_steps`;
    return the Monitor.

    Args:
        setup: what to train.
        seed: of the model's init (when it is built here), dropout and the batch order.
        model: an already built model (``None``: :func:`~impediments.train.loop.build` builds one).
        optimizer: the optimizer of a given ``model`` (``None``: ``setup.opt_fn(model.parameters())``).
        live: passed to :func:`~impediments.watch` (a live dashboard, ``impediments doctor --live``).
    """
    from impediments.watching import watch

    if model is None:
        model, optimizer = build(setup, seed)
    else:
        optimizer = optimizer if optimizer is not None else setup.opt_fn(model.parameters())
        train_mode(setup, model)
    with watch(model, optimizer=optimizer, live=live) as mon:
        run_steps(setup, model, optimizer, monitor=mon, seed=seed)
    return mon
