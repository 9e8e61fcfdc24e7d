"""The training loop: :func:`run_steps` trains a :class:`~impediments.train.setup.Setup`.

The training runs of ``impediments doctor``, ``impediments fix`` trials, the playground,
:func:`impediments.fit`, the doctor's zoo and the benchmarks all go through :func:`iterate_steps`
(the experiments keep their own loops, written out as the module teaches them). A monitor is optional and duck-typed (anything with ``record_loss(loss)``, such as the
one :func:`impediments.watch` returns): this module does not import the monitor, and a monitor
never changes what is trained. Typical use::

    model, optimizer = build(setup, seed)
    with imp.watch(model, optimizer=optimizer) as mon:
        losses = run_steps(setup, model, optimizer, monitor=mon, seed=seed)
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from impediments.data.batching import infinite_batches
from impediments.train.setup import Setup


def train_mode(setup: Setup, model: nn.Module) -> None:
    """Put ``model`` in training mode, then run ``setup.prepare`` on it (before any monitor is attached)."""
    model.train()
    if setup.prepare is not None:
        setup.prepare(model)


def build(setup: Setup, seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Seed the global RNG, build the model and its optimizer, and put the model in training mode.

    Args:
        setup: what to build.
        seed: passed to ``torch.manual_seed`` before ``setup.model_fn()`` (the model's init).

    Returns:
        ``(model, optimizer)``, ready for :func:`run_steps` (``setup.prepare`` has run).
    """
    torch.manual_seed(seed)
    model = setup.model_fn()
    optimizer = setup.opt_fn(model.parameters())
    train_mode(setup, model)
    return model, optimizer


def plain_step(setup: Setup, model: nn.Module, optimizer: torch.optim.Optimizer, xb, yb, warmup=None):
    """One ordinary step: forward, loss, ``zero_grad``, backward, optional clipping, ``step``, warm-up."""
    loss = setup.loss_fn(model(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if setup.clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), setup.clip_grad_norm)
    optimizer.step()
    if warmup is not None:
        warmup.step()
    return loss


def iterate_steps(setup: Setup, model: nn.Module, optimizer: torch.optim.Optimizer, *, monitor=None,
                  seed: int = 0) -> Iterator[torch.Tensor]:
    """Train ``setup.steps`` steps lazily, yielding each step's detached loss once the step is done.

    The step runs when the next loss is asked for, so a caller can wrap single steps (the playground
    captures activations of some). Nothing here reads a value back to the host: stopping on a
    non-finite loss is the caller's choice (:func:`run_steps` stops).

    Args:
        setup: the batches, loss, step function, scheduler, clipping and warm-up.
        model, optimizer: as built by :func:`build` (or by the caller, in training mode).
        monitor: ``None`` or an object with ``record_loss(loss)``, called with every step's loss.
        seed: seeds the global RNG (dropout) and the batch order.

    Yields:
        The loss of each step, detached.
    """
    torch.manual_seed(seed)
    batch_size = min(setup.batch_size, len(setup.X))
    make_batches = setup.batches_fn or (lambda X, y, size, s: infinite_batches(X, y, size, seed=s))
    batches = make_batches(setup.X, setup.y, batch_size, seed)
    warmup = (torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / setup.warmup_steps,
                                                total_iters=setup.warmup_steps) if setup.warmup_steps else None)
    scheduler = setup.scheduler_fn(optimizer) if setup.scheduler_fn is not None else None
    per_epoch = 1 if setup.scheduler_interval == "step" else max(1, len(setup.X) // batch_size)
    for step in range(setup.steps):
        xb, yb = next(batches)
        if setup.step_fn is None:
            loss = plain_step(setup, model, optimizer, xb, yb, warmup)
            if scheduler is not None and (step + 1) % per_epoch == 0:
                scheduler.step()
        else:
            loss = setup.step_fn(model, optimizer, setup.loss_fn, xb, yb, step,
                                 *([scheduler] if scheduler is not None else []))
        if monitor is not None:
            monitor.record_loss(loss)
        yield loss.detach()


def run_steps(setup: Setup, model: nn.Module, optimizer: torch.optim.Optimizer, *, monitor=None,
              seed: int = 0) -> list[float]:
    """Train ``setup.steps`` steps (see :func:`iterate_steps`); stop after the first non-finite loss.

    Returns:
        The loss of every step run, as floats (the last one non-finite when training stopped early).
    """
    losses: list[float] = []
    for loss in iterate_steps(setup, model, optimizer, monitor=monitor, seed=seed):
        losses.append(float(loss))
        if not math.isfinite(losses[-1]):
            break
    return losses
