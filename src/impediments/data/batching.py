"""Seeded mini-batch iteration driven by a :class:`torch.Generator`."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from impediments.data.validate import check_batch_size


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (independent of the global RNG)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool = True, generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield index tensors covering ``range(n)`` once (one epoch).

    Raises:
        ValueError: if ``batch_size`` is below 1 or larger than ``n``.
    """
    check_batch_size(batch_size, n)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def iterate_batches(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = True,
    generator: torch.Generator | None = None, drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(X[idx], y[idx])`` mini-batches for one epoch."""
    if len(X) != len(y):
        raise ValueError(f"X and y disagree on the number of examples: {len(X)} vs {len(y)}")
    for idx in batch_indices(len(X), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
        yield X[idx], y[idx]


def infinite_batches(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int = 0, drop_last: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless reshuffled epochs; deterministic for a given ``seed``."""
    g = make_generator(seed)
    while True:
        yield from iterate_batches(X, y, batch_size, generator=g, drop_last=drop_last)
