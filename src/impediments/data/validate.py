"""Small argument checks shared by the data helpers."""
from __future__ import annotations

import torch


def check_nonempty(X: torch.Tensor, name: str) -> None:
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)}); need at least one example")


def check_finite(X: torch.Tensor, name: str) -> None:
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        bad = int((~torch.isfinite(X)).sum())
        raise ValueError(f"{name} contains {bad} NaN/Inf values; clean the data first")


def check_batch_size(batch_size: int, n: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size={batch_size} is invalid: must be between 1 and the number of examples ({n})")
