"""``torch.compile``: keep the monitor out of dynamo's tracing and say what a compiled graph hides.

A model from ``torch.compile(model)`` is an ``OptimizedModule`` whose ``forward`` is the compiled
``model.__call__``. The monitor puts its root hooks on that wrapper, so they run in eager Python
*around* the compiled region, and reads names and parameters from the original module
(``_orig_mod``), so layers are ``"1"``, not ``"_orig_mod.1"``. Nested compiled submodules lose their
``_orig_mod.`` segment too (:func:`clean_name`).

On sampled steps the forward runs eagerly: :class:`EagerForward` sets
``torch.compiler.set_stance("force_eager")`` (torch >= 2.6) from the root pre-hook to the root
post-hook, so the interception (module hooks, the ``TorchFunctionMode``) sees every module and
functional activation of the eager computation, and dynamo never traces the monitor's code (the
cause of "hit config.recompile_limit" and "GLOBAL_STATE changed: torch_function" warnings and of
minutes of recompilation). Every other step runs the compiled graph untouched; its output, loss and
gradient norms are still checked. What this does not see is listed by :func:`not_checked` and
appears under "not checked" in the report:

* the compiled kernels' own numerics (fused activations, reordered reductions): statistics describe
  the eager computation of the same model on sampled steps;
* BatchNorm forwards using running statistics in training are counted on sampled steps only (the
  counting hook returns at once while dynamo traces it: :func:`compiling`);
* with torch < 2.6 (no ``set_stance``), nothing inside the compiled graph: activations, layer
  outputs and BatchNorm are not recorded; parameters, gradients, updates, inputs, loss are.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

_PREFIX = "_orig_mod"


def _optimized_module_type():
    """``OptimizedModule``, or None when dynamo was never imported: then nothing can have been compiled,
    and importing it here would cost seconds (``torch._dynamo`` is large) on every first ``watch()``."""
    if "torch._dynamo" not in sys.modules:
        return None
    try:
        from torch._dynamo.eval_frame import OptimizedModule
    except ImportError:  # pragma: no cover - torch built without dynamo
        return None
    return OptimizedModule


def is_compiled(model: nn.Module) -> bool:
    """True when ``model`` or one of its submodules came from ``torch.compile``."""
    opt = _optimized_module_type()
    return opt is not None and any(isinstance(m, opt) for m in model.modules())


def uncompiled(model: nn.Module) -> nn.Module:
    """The module ``torch.compile`` wrapped (``model`` itself when it is not a compiled wrapper)."""
    opt = _optimized_module_type()
    while opt is not None and isinstance(model, opt):
        model = model._orig_mod
    return model


def clean_name(name: str) -> str:
    """``"enc._orig_mod.1"`` -> ``"enc.1"``; ``"_orig_mod"`` -> ``""`` (the names the user wrote)."""
    if _PREFIX not in name:
        return name
    return ".".join(p for p in name.split(".") if p != _PREFIX)


def compiling() -> bool:
    """True while dynamo traces (``torch.compiler.is_compiling``, torch >= 2.3; False before)."""
    fn = getattr(torch.compiler, "is_compiling", None)
    return bool(fn()) if fn is not None else False


def can_run_eagerly() -> bool:
    """``torch.compiler.set_stance`` exists (torch >= 2.6)."""
    return hasattr(torch.compiler, "set_stance")


class EagerForward:
    """``enter()`` makes compiled functions run eagerly until ``exit()`` (idempotent, exception-safe)."""

    def __init__(self) -> None:
        self._stance = None

    def enter(self) -> None:
        if self._stance is None:
            self._stance = torch.compiler.set_stance("force_eager")   # sets now; exit restores the previous

    def exit(self) -> None:
        stance, self._stance = self._stance, None
        if stance is not None:
            stance.__exit__(None, None, None)


def not_checked() -> dict[str, str]:
    """Entries for the report's "not checked" list of a compiled model."""
    if can_run_eagerly():
        return {"torch.compile": "sampled steps ran eagerly (torch.compiler.set_stance('force_eager')): "
                                 "statistics describe the eager computation, not the compiled kernels' "
                                 "numerics (fused activations); BatchNorm running-statistics use is counted "
                                 "on sampled steps only"}
    return {"torch.compile": f"torch {torch.__version__} has no torch.compiler.set_stance (needs >= 2.6): "
                             "activations, layer outputs and BatchNorm inside the compiled graph were not "
                             "recorded; parameters, gradients, updates, inputs and loss were"}
