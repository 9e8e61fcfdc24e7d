"""``GroupNorm`` and ``InstanceNorm``: thin modules around :func:`impediments.norm.functional.group_norm`."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from impediments.norm import finite
from impediments.norm.functional import group_norm_with_stats


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class GroupNorm(nn.Module):
    r"""Group Normalization (Wu & He 2018): per-example statistics over groups of channels.

    The C channels are split into G groups of C/G; each example's group is
    normalized over its channels and all spatial axes, then scaled and
    shifted per channel:

    .. math:: z_{nc\cdot} = \gamma_c\,\frac{y_{nc\cdot}-\mu_{ng}}{\sqrt{\sigma^2_{ng}+\epsilon}} + \beta_c,
              \quad g = \lfloor c\,G/C \rfloor

    Independent of the batch size, identical in training and inference.
    ``G = 1`` is LayerNorm over (C, *); ``G = C`` is :class:`InstanceNorm`.

    Args:
        num_groups: G, which must divide ``num_channels``.
        num_channels: C (``input.shape[1]``).
        eps: ε added to the variance.
        affine: learn per-channel γ (``weight``) and β (``bias``).

    Attributes:
        check_finite: ``None`` (follow :func:`impediments.norm.set_check_finite`), ``"auto"``,
            ``True`` or ``False``; see :mod:`impediments.norm.finite`.

    Shape:
        Input ``(N, C, *)``; output the same.

    Raises:
        ValueError: if G does not divide C, or the input has another channel count.

    References:
        Wu & He 2018, https://arxiv.org/abs/1803.08494
    """

    check_finite: bool | str | None = None

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        _check_positive_int("num_groups", num_groups)
        _check_positive_int("num_channels", num_channels)
        if num_channels % num_groups:
            divisors = [g for g in range(1, num_channels + 1) if num_channels % g == 0]
            raise ValueError(f"num_groups={num_groups} must divide num_channels={num_channels}; "
                             f"valid choices: {divisors}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **factory)) if affine else None

    def reset_parameters(self) -> None:
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{type(self).__name__} expected input of shape (N, {self.num_channels}, *), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        params = self._parameters            # a dict read: nn.Module.__getattr__ costs about 1 us a lookup
        y, var = group_norm_with_stats(x, self.num_groups, params.get("weight"), params.get("bias"), self.eps)
        if finite.should_check(self, x):
            finite.warn_if_nonfinite(self, var, "per-example group statistics")
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class InstanceNorm(GroupNorm):
    r"""Instance Normalization (Ulyanov, Vedaldi & Lempitsky 2016): GroupNorm with ``G = C``.

    Each example's channel is normalized over its spatial axes. The default
    ``affine=False`` matches ``torch.nn.InstanceNorm1d/2d``; running
    statistics (torch's ``track_running_stats=True``) are not supported.

    Shape:
        Input ``(N, C, *spatial)`` with at least one spatial axis.

    Raises:
        ValueError: for input without a spatial axis or with another channel count.

    References:
        Ulyanov, Vedaldi & Lempitsky 2016, https://arxiv.org/abs/1607.08022
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = False, device=None, dtype=None) -> None:
        super().__init__(num_channels, num_channels, eps=eps, affine=affine, device=device, dtype=dtype)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[1] != self.num_channels:
            raise ValueError(f"InstanceNorm expected input of shape (N, {self.num_channels}, L, ...) with at least "
                             f"one spatial axis, got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.affine}"
