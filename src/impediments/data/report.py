"""Input statistics behind the zig-zag and unequal-scale impediments.

LeCun et al. (1998), *Efficient BackProp*, §4.3: the update of weight
:math:`w_j` of a first-layer unit is proportional to
:math:`\\sum_i \\delta^{(i)} x^{(i)}_j`; when every feature mean
:math:`\\bar x_j` has the same sign, all updates of that unit share one sign
and descent can only move "north-east or south-west" (the zig-zag).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impediments.data.validate import check_finite, check_nonempty


@dataclass(frozen=True)
class InputReport:
    """Per-feature input statistics.

    Attributes:
        mean: per-feature mean, shape ``(F,)``.
        std: per-feature (biased) std, shape ``(F,)``.
        same_sign_fraction: fraction of features whose mean has the majority
            sign (1.0 means every feature mean shares a sign; features with
            mean exactly 0 count for neither sign).
        variance_ratio: largest / smallest variance over features with
            non-zero variance (``inf`` when only some have zero variance is not
            possible: zero-variance features are excluded and counted).
        zero_variance: number of features with zero variance.
        mean_to_std: median over features of ``|mean| / std`` (0 when centred).
    """

    mean: torch.Tensor
    std: torch.Tensor
    same_sign_fraction: float
    variance_ratio: float
    zero_variance: int
    mean_to_std: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "same_sign_fraction": self.same_sign_fraction,
            "variance_ratio": self.variance_ratio,
            "zero_variance": self.zero_variance,
            "mean_to_std": self.mean_to_std,
        }


def input_report(X: torch.Tensor, eps: float = 1e-12) -> InputReport:
    """Summarise how centred and how equally scaled the input features are.

    Args:
        X: inputs of shape ``(N, ...)``; trailing axes are flattened to features.
        eps: variances at or below this count as zero.

    Returns:
        An :class:`InputReport`.

    Raises:
        ValueError: for empty input or NaN/Inf values.
    """
    X = torch.as_tensor(X)
    check_nonempty(X, "X")
    check_finite(X, "X")
    F = X.reshape(X.shape[0], -1).double()
    mean, std = F.mean(0), F.std(0, unbiased=False)
    var = std**2
    positive, negative = int((mean > 0).sum()), int((mean < 0).sum())
    same_sign = max(positive, negative) / mean.numel()
    live = var > eps
    ratio = float(var[live].max() / var[live].min()) if bool(live.any()) else 1.0
    m2s = (mean[live].abs() / std[live]).median() if bool(live.any()) else torch.tensor(0.0)
    return InputReport(
        mean=mean.float(),
        std=std.float(),
        same_sign_fraction=float(same_sign),
        variance_ratio=ratio,
        zero_variance=int((~live).sum()),
        mean_to_std=float(m2s),
    )
