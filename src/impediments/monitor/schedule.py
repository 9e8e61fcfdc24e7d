"""When to record the expensive statistics.

A schedule is a callable ``step -> bool`` (Cockpit's ``schedules``). The default,
:func:`default_schedule`, samples every step for the first ``WARMUP`` = 10 steps (where most
initialisation problems show), then every 50th step, and every 200th from step 10,000. A sampled
step costs about 0.5-2x a plain step on CPU (``benchmarks/overhead.py``), so the default adds
1-4 % from step 10 and under 1 % from step 10,000, on top of the per-step checks.
``every=k`` samples every ``k``-th step; ``every=1`` records the dense statistics at every step.

Dense and window statistics. A sampled step records the *dense* statistics: count, mean and variance
of the activations' inputs, of the Linear/Conv outputs and of their gradients, per-unit region
counts (a unit is dead when never active on any recorded batch), BatchNorm batch vs running
statistics, the parameters' gradient and weight norms, and the non-finite checks. The *window*
statistics are recorded only on the sampled steps that the default schedule would, at its pace
(:class:`FullSchedule`): the activations' outputs (moments and histograms), the input's moments, the
minimum and maximum of activation inputs and layer outputs, update-to-weight ratios, the first
layer's gradient sign agreement, ``clip_grad_value_``'s cut, symmetry snapshots, gate detection
(elementwise products of activation outputs, through the ``TorchFunctionMode``) and the loop probe's
sampled checks (loss-call inputs and targets, stale gradients, forward order, input fingerprints).
Why each can wait is in the README (monitor overhead; ``PERF_NOTES.md`` until folded in); in short,
the doctor never reads activation outputs or extremes, gates are a sticky flag, the loop checks look
for bugs present at every step, update ratios need a copy of the parameters (of a fixed sample of a
large one's values: :mod:`~impediments.monitor.probes.params`), and the data's moments are
stationary. So ``every=1`` costs at most 1.5x a plain step on the loops of
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
        return _Every(every)
    raise ValueError(f"every must be None (default schedule), an int >= 1 or a callable step -> bool; got {every!r}")


class _Every:
    """Every ``k``-th step (an object, so a monitor's schedule pickles)."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, step: int) -> bool:
        return step % self.k == 0


def default_count(step: int) -> int:
    """How many steps in ``0..step`` :func:`default_schedule` samples."""
    if step < 0:
        return 0
    if step < WARMUP:
        return step + 1
    if step < LATE_START:
        return WARMUP + step // PERIOD
    return WARMUP + (LATE_START - 1) // PERIOD + step // LATE_PERIOD - LATE_START // LATE_PERIOD + 1


class FullSchedule:
    """The sampled steps on which the window statistics are recorded too: a sampled step is *full*
    while fewer full steps were taken than :func:`default_schedule` samples up to it, so full steps
    come at the default's pace whatever the schedule (``every=1``: exactly the default's steps; a
    schedule no denser than the default: every sampled step).

    ``fs(step)`` asks without deciding (the loop probe asks ahead of the step); ``fs.decide(step)`` is
    called once a step starts and counts it; the decision holds for every forward of that step.
    """

    def __init__(self, schedule: Callable[[int], bool]) -> None:
        self.schedule = schedule
        self.taken = 0
        self._step, self._full = -1, False

    def __call__(self, step: int) -> bool:
        if step == self._step:
            return self._full
        return bool(self.schedule(step)) and self.taken < default_count(step)

    def decide(self, step: int) -> bool:
        """Whether ``step`` (sampled by the schedule or not) is full; counts it when it is."""
        if step != self._step:
            full = self(step)
            self._step, self._full = step, full
            self.taken += full
        return self._full


def full_schedule(schedule: Callable[[int], bool]):
    """The full schedule of ``schedule`` (see :class:`FullSchedule`); the default schedule is its own."""
    return schedule if schedule is default_schedule else FullSchedule(schedule)
