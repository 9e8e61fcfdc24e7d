"""Name-to-module lookups shared by the model builders."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from impediments.activations.catalog import get as get_activation
from impediments.activations.catalog import names as activation_names

#: name -> module factory, built from the activation catalog (:mod:`impediments.activations`).
ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    name: get_activation(name).module for name in activation_names()
}
NORM_NAMES = ("batch", "layer", "group")
NORM_POSITIONS = ("pre", "post")


def activation(name: str) -> nn.Module:
    """A fresh activation module looked up by name.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(ACTIVATION_MODULES)}")
    return get_activation(name).module()


def check_norm(norm: str | None, position: str) -> None:
    if norm is not None and norm not in NORM_NAMES:
        raise ValueError(f"unknown norm {norm!r}; valid: None, {', '.join(map(repr, NORM_NAMES))}")
    if position not in NORM_POSITIONS:
        raise ValueError(f"unknown norm_position {position!r}; valid: {', '.join(map(repr, NORM_POSITIONS))}")


def group_count(channels: int, preferred: int = 8) -> int:
    """The largest divisor of ``channels`` not above ``preferred`` (GroupNorm groups)."""
    return max(g for g in range(1, min(preferred, channels) + 1) if channels % g == 0)


def norm_layer(norm: str, channels: int, spatial_dims: int) -> nn.Module:
    """Normalization over ``channels`` for dense (0) or conv (1, 2) features.

    ``"layer"`` on conv features normalizes over (C, *spatial), i.e.
    ``GroupNorm(1, C)``; on dense features it is ``LayerNorm(C)``.
    """
    if norm == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[spatial_dims](channels)
    if norm == "layer":
        return nn.LayerNorm(channels) if spatial_dims == 0 else nn.GroupNorm(1, channels)
    if norm == "group":
        return nn.GroupNorm(group_count(channels), channels)
    raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORM_NAMES)}")


def check_positive(**sizes: int) -> None:
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
