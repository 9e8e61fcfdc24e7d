"""When to record the expensive statistics.

A schedule is a callable ``step -> bool`` (Cockpit's ``schedules``). The default,
:func:`default_schedule`, samples every step for the first ``warmup`` = 10 steps (where most
initialisation problems show), then every 20th step (1/20 of the cost of recording everything,
which keeps the default within a few percent of plain training), and every 100th after 10,000 steps.
``every=k`` samples every ``k``-th step; ``every=1`` records everything at every step.
"""
from __future__ import annotations

from collections.abc import Callable

WARMUP, PERIOD, LATE_START, LATE_PERIOD = 10, 20, 10_000, 100


def default_schedule(step: int) -> bool:
    """``True`` for steps 0..9, then every 20th step, then every 100th from step 10,000."""
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
