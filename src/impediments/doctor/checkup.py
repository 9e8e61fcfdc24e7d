"""``checkup(model, inputs, targets=None, loss_fn=None) -> Report``: what is visible at the current weights.

One forward pass (and one backward pass when ``targets`` or ``loss_fn`` is
given) under :class:`impediments.monitor.Monitor` with ``every=1``. The model is
left as it was: weights, buffers (BatchNorm running statistics), ``.grad``
and train/eval mode are restored afterwards.

What one step at init can settle, and what it leaves to ``watch()`` (issue 25):

* **The init scale** shows at the first forward: each layer's variance gain
  :math:`\\operatorname{Var}(y)/\\overline{x^2} = \\text{fan\\_in}\\,\\sigma_w^2`, and the residual stream's
  RMS block by block (``init_scale_too_large``, :mod:`~impediments.doctor.rules.init_scale`), and the loss
  against an uninformed prediction (``initial_loss_high``).
* **Gradients across depth** are compared only along signals one learning rate serves: the residual
  stream (not the layers inside its branches: layer-scale and zero-init branches, experts that see only
  their routed tokens, norms inside the branch), without attention query/key projections (second order at
  init), one stream at a time (an encoder and a decoder are two), and without paths blocked exactly by a
  zero-initialized gate (:mod:`~impediments.doctor.rules.gradients`).
* **What only training settles is not checked here**: a stream re-normalized by LayerNorm/RMSNorm at
  every block (pre- or post-LN) spreads its gradient by design, and whether that impedes training
  depends on the optimizer, which ``checkup`` does not know (:mod:`~impediments.doctor.rules.residual`);
  an absolute gradient norm is judged by the step the optimizer takes, measured under ``watch()``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from impediments.doctor.diagnose import diagnose
from impediments.doctor.finding import Report
from impediments.doctor.thresholds import Thresholds


class _Snapshot:
    """Buffers, gradients and per-module training flags, restored on exit."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.buffers = [(b, b.detach().clone()) for b in model.buffers()]
        self.grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
        self.modes = [(m, m.training) for m in model.modules()]

    def restore(self) -> None:
        with torch.no_grad():
            for b, saved in self.buffers:
                b.copy_(saved)
        for p, g in self.grads:
            p.grad = g
        for m, mode in self.modes:
            m.training = mode


def _call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _loss(output, targets, loss_fn: Callable | None):
    if loss_fn is not None:
        return loss_fn(output) if targets is None else loss_fn(output, targets)
    return default_loss(output, targets)


def default_loss(output, target):
    """Cross-entropy for integer targets, else MSE; the first output of a dict/tuple/list."""
    if isinstance(output, dict):
        output = next(iter(output.values()))
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if target.dtype in (torch.int64, torch.int32):
        return nn.functional.cross_entropy(output, target)
    return nn.functional.mse_loss(output, target)


def checkup(model: nn.Module, inputs, targets=None, loss_fn: Callable | None = None, *,
            optimizer: torch.optim.Optimizer | None = None,
            thresholds: Thresholds | dict | None = None) -> Report:
    """Diagnose ``model`` at its current weights from one batch.

    Args:
        model: any ``nn.Module``.
        inputs: a tensor, a tuple of positional inputs, or a dict of keyword inputs.
        targets: optional targets; with them (or ``loss_fn``) a backward pass runs too.
        loss_fn: ``loss_fn(output, targets)`` (or ``loss_fn(output)`` without targets);
            default cross-entropy for integer targets, MSE otherwise.
        optimizer: the optimizer that will train the model (never stepped here). Its type tells the rules
            how a step scales with the gradient: under Adam-like optimizers a gradient trend across depth
            is info (each parameter's step is normalized by its own gradient scale).
        thresholds: overrides, see :class:`Thresholds`.

    Returns:
        A :class:`Report` titled ``impediments checkup``. Loss-based rules are skipped.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"checkup needs an nn.Module, got {type(model).__name__}")
    from impediments.monitor import Monitor

    snapshot = _Snapshot(model)
    try:
        if not model.training:      # a model handed over in eval mode is checked as it would train;
            model.train()           # one in training mode keeps its layers' own modes (e.g. a BN left in eval)
        for p in model.parameters():
            p.grad = None
        with Monitor(model, every=1) as mon:
            output = _call(model, inputs)
            if targets is not None or loss_fn is not None:
                _loss(output, targets, loss_fn).backward()
        stats = mon.stats()
    finally:
        snapshot.restore()
    if optimizer is not None and stats.optimizer is None:   # named only: the monitor hooks no step here
        stats = dataclasses.replace(stats, optimizer={"type": type(optimizer).__name__})
    return diagnose(stats, thresholds, title="impediments checkup")
