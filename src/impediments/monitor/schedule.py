"""When to record the expensive statistics.

A schedule is a callable ``step -> bool`` (Cockpit's ``schedules``). The default,
:func:`default_schedule`, samples every step for the first ``WARMUP`` = 10 steps (where most
initialisation problems show), then every 50th step, and every 200th from step 10,000. A sampled
step costs about 0.5-2x a plain step on CPU (``benchmarks/overhead.py``), so the default adds
1-4 % from step 10 and under 1 % from step 10,000, on top of the per-step checks.
``every=k`` samples every ``k``-th step; ``every=1`` records the dense statistics at every step.

Dense and window statistics. A sampled step records the *dense* statistics: moments of the
activations (inputs and outputs), of the Linear/Conv outputs and their gradients, BatchNorm batch
vs running statistics, the input's moments, per-unit region counts and the parameters' gradient and
update norms. The *window* statistics are recorded only on the sampled steps that the default
schedule samples too (:func:`full_schedule`): activation histograms, gate detection (elementwise
products of activation outputs, through the ``TorchFunctionMode``) and the loop probe's sampled checks
(loss-call inputs and targets, stale gradients, forward order, input fingerprints). The doctor never
reads the histograms; gates are a sticky flag; the loop checks look for a bug that, when present, is
present at every step. So ``every=1`` costs at most 1.5x a plain step on the loops of
``benchmarks/overhead.py``, and for ``every=None`` (or any schedule no denser than the default) the
two sets coincide.
"""
from __future__ import annotations

from collections.abc import Callable

WARMUP, PERIOD, LATE_START, LATE_PERIOD = 10, 50, 10_000, 200


def default_schedule(step: int) -> bool:
    """``True`` for steps 0..9, then every 50th step, then every 200th from step 10,000."""
    if step < WARMUP:
        return True
    if step < LATE_START:
        return step % PERIOD == 0
    return step % LATE_PERIOD == 0


def make_schedule(every) -> Callable[[int], bool]:
    """``None`` -> :func:`default_schedule`; an int ``k >= 1`` -> every ``k``-th step; a callable as is.

    Raises:
        ValueError: for an int below 1 or any other type.
    """
    if every is None:
        return default_schedule
    if callable(every):
        return every
    if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
        return lambda step: step % every == 0
    raise ValueError(f"every must be None (default schedule), an int >= 1 or a callable step -> bool; got {every!r}")


def full_schedule(schedule: Callable[[int], bool]) -> Callable[[int], bool]:
    """The steps on which the window statistics are recorded too: sampled by ``schedule`` and by
    :func:`default_schedule` (``schedule`` itself when it is the default)."""
    if schedule is default_schedule:
        return schedule
    return lambda step: schedule(step) and default_schedule(step)
