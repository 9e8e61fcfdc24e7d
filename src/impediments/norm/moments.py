"""``ChannelMoments``: a mergeable per-channel count / mean / M2 accumulator.

Exact pooled mean and variance over any number of batches (Chan, Golub &
LeVeque 1979 parallel update), in float64, detached, on the data's device,
with no host syncs. Used by PreciseBN and :func:`variance_shift`.
"""
from __future__ import annotations

import torch
from torch import Tensor


class ChannelMoments:
    r"""Count, mean and sum of squared deviations (M2) per channel.

    Merging two summaries ``a`` and ``b`` (Chan et al. 1979):

    .. math:: \delta = \bar x_b - \bar x_a,\quad n = n_a + n_b,\quad
              \bar x = \bar x_a + \delta\,n_b/n,\quad
              M_2 = M_{2,a} + M_{2,b} + \delta^2 n_a n_b / n

    Args:
        num_channels: C.
        channel_dim: the channel axis of the tensors given to :meth:`update`.
    """

    def __init__(self, num_channels: int, channel_dim: int = 1) -> None:
        self.num_channels, self.channel_dim = num_channels, channel_dim
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        """Add every value of ``x`` to its channel's summary."""
        x = x.detach()
        if x.dim() <= self.channel_dim or x.shape[self.channel_dim] != self.num_channels:
            raise ValueError(f"expected {self.num_channels} channels on axis {self.channel_dim}, "
                             f"got shape {tuple(x.shape)}")
        n = x.numel() // self.num_channels
        if n == 0:
            return
        dims = tuple(d for d in range(x.dim()) if d != self.channel_dim)
        x64 = x.to(torch.float64)
        mean = x64.mean(dims)
        shape = [1] * x.dim()
        shape[self.channel_dim] = -1
        m2 = (x64 - mean.view(shape)).square_().sum(dims)
        self._merge(n, mean, m2)

    def merge(self, other: ChannelMoments) -> ChannelMoments:
        """Fold ``other``'s summary into this one (e.g. across processes or runs)."""
        if other.num_channels != self.num_channels:
            raise ValueError(f"cannot merge moments of {other.num_channels} channels into {self.num_channels}")
        if other.count:
            self._merge(other.count, other.mean, other.m2)
        return self

    def _merge(self, n_b: int, mean_b: Tensor, m2_b: Tensor) -> None:
        if self.count == 0:
            self.count, self.mean, self.m2 = n_b, mean_b.clone(), m2_b.clone()
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b.to(self.mean.device) - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b.to(self.m2.device) + delta.square() * (n_a * n_b / n)
        self.count = n

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, unbiased variance)`` per channel, float64.

        Raises:
            ValueError: with fewer than two values per channel.
        """
        if self.count < 2:
            raise ValueError(f"need at least 2 values per channel for a variance, have {self.count}")
        return self.mean, self.m2 / (self.count - 1)
