"""Part 1 of the module: inputs, activations and initialization.

``EXPERIMENTS`` lists the experiment modules in the order the module tells
the story; the registry name of each is its file name.
"""
from __future__ import annotations

_ORDER = (
    "activations", "zigzag", "zero_init", "identical_init", "dead_bias", "depth_distributions", "glorot_he",
    "residual_limits", "layerwise_pretraining",
)


def _available() -> list[str]:
    from importlib.util import find_spec

    return [f"{__name__}.{n}" for n in _ORDER if find_spec(f"{__name__}.{n}") is not None]


EXPERIMENTS: list[str] = _available()
