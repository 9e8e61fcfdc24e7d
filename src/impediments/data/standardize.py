"""Per-feature standardization fitted on training data only.

LeCun et al. (1998), *Efficient BackProp*, §4.3: inputs whose features have
non-zero means make every weight update of a unit share one sign (the
"zig-zag"), and features with unequal variances learn at unequal rates.
Standardizing gives each feature mean 0 and variance 1:

.. math:: \\hat x_j = (x_j - \\mu_j) / \\sigma_j
"""
from __future__ import annotations

import torch

from impediments.data.validate import check_finite, check_nonempty


class Standardizer:
    """Fit per-feature mean and std on train data, then apply them to any split.

    Features with zero variance on the training data (for example always-zero
    pixels) are *reported* in :attr:`zero_variance_features` and left
    unscaled (divided by 1) instead of producing ``inf``/``NaN``.

    Shape:
        ``X``: ``(N, *feature_shape)``; statistics have shape ``feature_shape``.

    Examples:
        >>> s = Standardizer().fit(X_train)
        >>> X_test_std = s.transform(X_test)
    """

    def __init__(self, eps: float = 1e-12) -> None:
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def zero_variance_features(self) -> list[int]:
        """Flat indices of features whose training std is (numerically) zero."""
        self._require_fitted()
        return torch.nonzero(self._raw_std.flatten() <= self.eps).flatten().tolist()

    def fit(self, X: torch.Tensor) -> "Standardizer":
        """Compute per-feature mean and (biased) std over the first axis.

        Raises:
            ValueError: if ``X`` is empty or contains NaN/Inf.
        """
        X = torch.as_tensor(X)
        check_nonempty(X, "X")
        check_finite(X, "X")
        X64 = X.double()
        self.mean = X64.mean(0).to(X.dtype if X.is_floating_point() else torch.float32)
        raw = X64.std(0, unbiased=False)
        self._raw_std = raw.to(self.mean.dtype)
        self.std = torch.where(raw > self.eps, raw, torch.ones_like(raw)).to(self.mean.dtype)
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Apply ``(X - mean) / std`` with the fitted statistics.

        Raises:
            RuntimeError: if called before :meth:`fit`.
            ValueError: if the feature shape differs from the fitted one.
        """
        self._require_fitted()
        X = torch.as_tensor(X)
        if tuple(X.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(
                f"Standardizer was fitted on feature shape {tuple(self.mean.shape)}, "
                f"got data with feature shape {tuple(X.shape[1:])}"
            )
        return (X.to(self.mean.dtype) - self.mean) / self.std

    def fit_transform(self, X: torch.Tensor) -> torch.Tensor:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        return Z * self.std + self.mean

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._require_fitted()
        return {"mean": self.mean.clone(), "std": self.std.clone(), "raw_std": self._raw_std.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> "Standardizer":
        missing = {"mean", "std", "raw_std"} - set(state)
        if missing:
            raise KeyError(f"Standardizer state is missing keys {sorted(missing)}")
        self.mean, self.std, self._raw_std = (state[k].clone() for k in ("mean", "std", "raw_std"))
        return self

    def _require_fitted(self) -> None:
        if self.mean is None:
            raise RuntimeError("Standardizer is not fitted: call fit(X_train) first")
