"""A training setup: what to build and how to train it, as factories and tensors.

One :class:`Setup` describes a run for every consumer of the training loop: the
``impediments doctor``/``fix`` spec files, the remedies of ``impediments fix`` (which return
changed copies with :func:`dataclasses.replace`), the playground, the doctor's zoo and the
benchmarks. :func:`impediments.train.loop.run_steps` trains one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

#: When the plain step steps ``Setup.scheduler_fn``'s scheduler: once per epoch or after every step.
SCHEDULER_INTERVALS = ("epoch", "step")


def default_optimizer(params) -> torch.optim.Optimizer:
    """SGD with learning rate 0.1: the optimizer of a spec or setup that names none."""
    return torch.optim.SGD(params, lr=0.1)


@dataclass(frozen=True, kw_only=True)
class Setup:
    """One training setup.

    Attributes:
        model_fn: ``() -> nn.Module``, a fresh model per call.
        X, y: training inputs and targets.
        loss_fn: ``(output, target) -> loss``.
        opt_fn: ``params -> torch.optim.Optimizer``.
        steps: optimizer steps to train.
        batch_size: mini-batch size (capped at ``len(X)``).
        prepare: ``model -> None``, run after ``model.train()`` and before training (e.g. layers
            deliberately put in eval mode).
        batches_fn: ``(X, y, batch_size, seed) -> iterator of (xb, yb)``; ``None``: reshuffled epochs
            (:func:`impediments.data.batching.infinite_batches`, the last partial batch dropped).
        scheduler_fn: ``optimizer -> LR scheduler``. The plain step steps it once per epoch or after every
            step (``scheduler_interval``); a ``step_fn`` receives it as a 7th argument and steps it itself.
        scheduler_interval: ``"epoch"`` or ``"step"`` (see :data:`SCHEDULER_INTERVALS`).
        step_fn: ``(model, optimizer, loss_fn, xb, yb, step[, scheduler]) -> loss``, replacing the plain
            step (forward, loss, ``zero_grad``, backward, clipping, ``step``, warm-up, scheduler).
        clip_grad_norm: the plain step clips the global gradient norm to this value (``None``: no clipping).
        warmup_steps: the plain step warms the learning rate up linearly over this many steps (0: none).

    Raises:
        ValueError: ``steps`` or ``batch_size`` not a positive integer, an unknown ``scheduler_interval``,
            or ``X`` and ``y`` of different lengths.
    """

    model_fn: Callable[[], nn.Module]
    X: torch.Tensor
    y: torch.Tensor
    loss_fn: Callable
    opt_fn: Callable[..., torch.optim.Optimizer] = default_optimizer
    steps: int = 100
    batch_size: int = 64
    prepare: Callable[[nn.Module], None] | None = None
    batches_fn: Callable[..., Iterator] | None = None
    scheduler_fn: Callable | None = None
    scheduler_interval: str = "epoch"
    step_fn: Callable | None = None
    clip_grad_norm: float | None = None
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        for name, value in (("steps", self.steps), ("batch_size", self.batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(f"scheduler_interval must be one of {', '.join(SCHEDULER_INTERVALS)}; "
                             f"got {self.scheduler_interval!r}")
        if len(self.X) != len(self.y):
            raise ValueError(f"X and y disagree on the number of examples: {len(self.X)} vs {len(self.y)}")
