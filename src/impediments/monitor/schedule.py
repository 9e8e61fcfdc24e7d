"""When to record the expensive statistics.

A schedule is a callable ``step -> bool`` (Cockpit's ``schedules``). The default,
:func:`default_schedule`, samples every step for the first ``WARMUP`` = 10 steps (where most
initialisation problems show), then every 50th step, and every 200th from step 10,000. A sampled
step costs about 0.5-2x a plain step on CPU (``benchmarks/overhead.py``), so the default adds
1-4 % from step 10 and under 1 % from step 10,000, on top of the per-step checks.
``every=k`` samples every ``k``-th step; ``every=1`` records everything at every step.
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
