"""``LayerNorm``: a thin module around :func:`impediments.norm.functional.layer_norm`."""
from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from impediments.norm import finite, fused
from impediments.norm.functional import layer_norm_with_stats


#: torch.OutOfMemoryError (2.5+; torch.cuda's before): never mistaken for a shape mismatch
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class LayerNorm(nn.Module):
    r"""Layer Normalization (Ba, Kiros & Hinton 2016): per-example statistics.

    .. math:: z = \gamma\,\frac{y-\mu}{\sqrt{\sigma^2+\epsilon}} + \beta

    with μ and the biased σ² taken over the trailing ``normalized_shape`` axes
    of each example. Training and inference compute the same thing (there are
    no running statistics); freezing only stops γ and β from training.

    Args:
        normalized_shape: the trailing shape to normalize over (an int for one axis).
        eps: ε added to the variance.
        elementwise_affine: learn γ (``weight``) and β (``bias``) of shape ``normalized_shape``.
        bias: whether to learn β (when ``elementwise_affine``).

    Attributes:
        check_finite: ``None`` (follow :func:`impediments.norm.set_check_finite`), ``"auto"``,
            ``True`` or ``False``; see :mod:`impediments.norm.finite`.

    Shape:
        Input ``(*, *normalized_shape)``; output the same.

    Raises:
        ValueError: if the input's trailing dimensions are not ``normalized_shape``.

    References:
        Ba, Kiros & Hinton 2016, https://arxiv.org/abs/1607.06450
    """

    check_finite: bool | str | None = None

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        if not shape or any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1 for s in shape):
            raise ValueError(f"normalized_shape must be a positive int or a non-empty tuple of them, "
                             f"got {normalized_shape!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(self.normalized_shape, **factory)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape, **factory)) if elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        params = self._parameters            # a dict read: nn.Module.__getattr__ costs about 1 us a lookup
        weight, bias = params.get("weight"), params.get("bias")
        y = None
        if fused.eligible(x, weight, bias):  # the common case straight to the fused kernel (benchmarks/norm.py);
            try:                             # it checks the shape itself, cheaper than a check here in a step
                y, stats = fused.layer_norm(x, self.normalized_shape, weight, bias, self.eps)
            except _OUT_OF_MEMORY:
                raise
            except RuntimeError:             # a shape mismatch: the functional below raises the ValueError naming it
                y = None
        if y is None:
            y, stats = layer_norm_with_stats(x, self.normalized_shape, weight, bias, self.eps)
        if finite.should_check(self, x):
            finite.warn_if_nonfinite(self, stats, "per-example statistics")
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
