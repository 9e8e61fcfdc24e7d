"""Warn, naming the layer, when a normalization layer sees NaN or Inf.

A NaN in a normalization layer's input spreads to every output that shares
its statistics (a whole channel for BatchNorm, a whole example for
LayerNorm/GroupNorm), so the first layer that sees one is worth naming.

Cost and policy: each layer's ``check_finite`` attribute, or, while that is
``None`` (the default), the process-wide setting of :func:`set_check_finite`
(initially ``"auto"``):

* ``"auto"`` — check the statistics the layer computes anyway (per-channel
  batch mean on the fused path or variance on the reference path, likewise
  per example or group; :mod:`impediments.norm.fused`), which are non-finite
  exactly when the values they summarize contain NaN/Inf (or overflow). That
  is a reduction over C (or N·G) values, not over the input; it needs
  ``bool()`` on the result, so it runs only for CPU tensors, where there is
  no device to wait for. BatchNorm in inference mode computes no statistics
  and is not checked.
* ``True`` — also check accelerator tensors (one host sync per forward) and
  BatchNorm in inference mode (a full pass over the input). A debug setting.
* ``False`` — never check.
"""
from __future__ import annotations

import math
import sys
import warnings

import torch
from torch import nn

CHECK_FINITE_CHOICES = ("auto", True, False)


class NonFiniteInputWarning(RuntimeWarning):
    """A normalization layer received NaN or Inf (or its statistics overflowed)."""


_DEFAULT = {"mode": "auto"}


def set_check_finite(mode: bool | str) -> bool | str:
    """Set the process-wide NaN/Inf check for layers whose ``check_finite`` is ``None``.

    Args:
        mode: ``"auto"``, ``True`` (debug: check everywhere) or ``False``.

    Returns:
        The previous setting, to restore it later.

    Raises:
        ValueError: for any other value.
    """
    if mode not in CHECK_FINITE_CHOICES or (isinstance(mode, int) and not isinstance(mode, bool)):
        raise ValueError(f"check_finite must be one of {CHECK_FINITE_CHOICES}, got {mode!r}")
    previous, _DEFAULT["mode"] = _DEFAULT["mode"], mode
    return previous


def mode_of(module: nn.Module) -> bool | str:
    mode = module.check_finite
    return _DEFAULT["mode"] if mode is None else mode


def should_check(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether to check the layer's statistics for this input."""
    mode = mode_of(module)
    return mode is True or (mode == "auto" and x.is_cpu)


def warn_if_nonfinite(module: nn.Module, stats: torch.Tensor, what: str, nonnegative: bool = True) -> None:
    """Warn if ``stats`` holds a NaN/Inf. ``what`` says which statistics they are.

    For statistics (batch means or variances) one ``sum`` decides: it is finite
    exactly when every term is (barring overflow of already-huge values).
    """
    finite = math.isfinite(float(stats.sum())) if nonnegative else bool(torch.isfinite(stats).all())
    if not finite:
        bad = int((~torch.isfinite(stats)).sum())
        warnings.warn(
            f"{layer_name(module)} got NaN/Inf input: {bad} of {stats.numel()} {what} are non-finite, so its "
            "outputs are NaN; look at the layers feeding it (learning rate, log/div of zero, bad data)",
            NonFiniteInputWarning, stacklevel=4)


def layer_name(module: nn.Module) -> str:
    """``'hidden2.norm (BatchNorm(32))'``: the qualified name inside the calling model, found on demand.

    The calling model is the outermost ``nn.Module`` among the caller frames'
    ``self``; this runs only on the warning path. Falls back to the class repr.
    """
    desc = f"{type(module).__name__}({module.extra_repr()})"
    root = None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and owner is not module:
            root = owner
        frame = frame.f_back
    if root is not None:
        for name, sub in root.named_modules():
            if sub is module and name:
                return f"layer {name!r} ({desc})"
    return f"layer {desc}"
