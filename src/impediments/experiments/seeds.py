"""Which seeds an experiment runs: the mode's defaults and ``--seeds`` ranges."""
from __future__ import annotations

from collections.abc import Sequence

# Seeds per claim by default. Quick runs 5, not the minimum 3: a 95 % t interval over 3 seeds reaches
# 2.5 standard deviations to each side of the mean, over 5 seeds 1.2.
QUICK_SEEDS, FULL_SEEDS = 5, 8


def default_seeds(quick: bool, start: int = 0) -> list[int]:
    """The mode's default seeds: ``QUICK_SEEDS`` or ``FULL_SEEDS`` consecutive seeds from ``start``."""
    return list(range(start, start + (QUICK_SEEDS if quick else FULL_SEEDS)))


def parse_seeds(text: str | None, *, quick: bool, start: int = 0) -> list[int]:
    """Seeds from ``--seeds`` (``"0-9"``, ``"3,4,7"``, or both: ``"0-2,7"``), else the mode's defaults from ``start``.

    Raises:
        ValueError: one line naming the bad value and the accepted forms (negative seeds included).
    """
    if text is None:
        if start < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {start}")
        return default_seeds(quick, start)
    seeds: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ValueError(f"--seeds {text!r}: {part.strip()!r} is not a non-negative integer or range; "
                             "use e.g. 0-9 or 3,4,7") from None
        if b < a:
            raise ValueError(f"--seeds {text!r}: range {part.strip()!r} is empty (end before start)")
        seeds.update(range(a, b + 1))
    return sorted(seeds)


def seed_text(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    return f"{s[0]}-{s[-1]}" if len(s) > 2 and s == list(range(s[0], s[-1] + 1)) else ",".join(map(str, s))
