"""Part 2 of the module: Batch, Layer and Group Normalization, and frozen BN in transfer learning.

``EXPERIMENTS`` lists the experiment modules in the order the module tells
the story; the registry name of each is its file name.
"""
from __future__ import annotations

_ORDER = (
    "bn_sigmoid", "bn_output_stats", "bn_placement", "bn_gamma_beta", "bn_learning_rates", "bn_gradient_scale",
    "bn_inference", "bn_dropout", "l2_with_bn",
    "small_batch_norms", "norm_every_k", "frozen_bn_transfer",
)


def _available() -> list[str]:
    from importlib.util import find_spec

    return [f"{__name__}.{n}" for n in _ORDER if find_spec(f"{__name__}.{n}") is not None]


EXPERIMENTS: list[str] = _available()
