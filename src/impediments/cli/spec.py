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
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from impediments.doctor.checkup import default_loss


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


def build_training(spec: Spec, model: nn.Module):
    """``(optimizer, loss_fn)`` from the spec, with the defaults."""
    if callable(spec.get("optimizer")):
        opt = _call(spec, "optimizer", model.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise SpecError(f"spec {str(spec.path)!r}: optimizer(params) must return a torch.optim.Optimizer")
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = spec.get("loss_fn") or default_loss
    if not callable(loss_fn):
        raise SpecError(f"spec {str(spec.path)!r}: loss_fn must be callable")
    return opt, loss_fn


def build_loop(spec: Spec, optimizer) -> dict:
    """The spec's loop overrides as ``train_under_monitor`` keywords (``step_fn``, ``batches``, ``scheduler``)."""
    out = {}
    for name in ("train_step", "batches", "scheduler"):
        fn = spec.get(name)
        if fn is not None and not callable(fn):
            raise SpecError(f"spec {str(spec.path)!r}: {name} must be callable, got {type(fn).__name__}")
    if spec.get("scheduler") is not None:
        out["scheduler"] = _call(spec, "scheduler", optimizer)
    if spec.get("train_step") is not None:
        out["step_fn"] = spec.get("train_step")
    if spec.get("batches") is not None:
        out["batches"] = spec.get("batches")
    return out


def default_step(model, optimizer, loss_fn, xb, yb, step):
    """One plain training step: forward, loss, ``zero_grad``, backward, ``step``; returns the loss."""
    loss = loss_fn(model(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_under_monitor(model, X, y, optimizer, loss_fn, *, steps: int, batch_size: int, seed: int = 0,
                        prepare=None, step_fn=None, batches=None, scheduler=None, live=False):
    """Train ``steps`` mini-batch steps under :func:`impediments.monitor.watch`; return the Monitor.

    ``prepare(model)``, if given, runs after ``model.train()`` (e.g. to put some
    layers in eval mode). Stops early (after recording it) when the loss becomes NaN/Inf.
    ``step_fn(model, optimizer, loss_fn, xb, yb, step[, scheduler])`` replaces :func:`default_step`,
    ``batches(X, y, batch_size, seed)`` the reshuffled epochs; a ``scheduler`` is stepped once per epoch
    unless ``step_fn`` is given (it then receives the scheduler and owns it).
    ``live``: passed to :func:`~impediments.monitor.watch` (a live dashboard server, ``impediments doctor --live``).
    """
    from impediments.data.batching import infinite_batches
    from impediments.monitor import watch

    torch.manual_seed(seed)
    batch_size = min(batch_size, len(X))
    data = (batches or (lambda X, y, b, s: infinite_batches(X, y, b, seed=s)))(X, y, batch_size, seed)
    per_epoch = max(1, len(X) // batch_size)
    model.train()
    if prepare is not None:
        prepare(model)
    with watch(model, optimizer=optimizer, live=live) as mon:
        for step in range(steps):
            xb, yb = next(data)
            if step_fn is None:
                loss = default_step(model, optimizer, loss_fn, xb, yb, step)
                if scheduler is not None and (step + 1) % per_epoch == 0:
                    scheduler.step()
            else:
                loss = step_fn(model, optimizer, loss_fn, xb, yb, step, *([scheduler] if scheduler is not None else []))
            mon.record_loss(loss)
            if not math.isfinite(float(loss.detach())):
                break
    return mon
