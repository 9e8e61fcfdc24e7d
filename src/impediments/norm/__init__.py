"""Normalization layers with exact training, inference and frozen semantics.

Layers (functional core in :mod:`~impediments.norm.functional`, thin modules
around it, torch-compatible ``state_dict`` names): :class:`BatchNorm`,
:class:`LayerNorm`, :class:`GroupNorm`, :class:`InstanceNorm`.

Tools that work on ours and on ``torch.nn.BatchNorm*`` alike:
:func:`freeze` / :func:`unfreeze` / :func:`frozen_state` (Keras
``trainable=False`` semantics that survive ``model.train()``),
:func:`recompute_bn_stats` (PreciseBN), :func:`fold_bn`, :func:`variance_shift`.

NaN/Inf inputs give a :class:`NonFiniteInputWarning` naming the layer; see
:mod:`~impediments.norm.finite` for what is checked, its cost, and
:func:`set_check_finite`.

Momentum follows torch: running ← (1 − momentum)·running + momentum·batch, so
torch's 0.1 is Keras's ``momentum=0.9`` and Keras's default 0.99 is torch's
0.01 (:func:`from_keras_momentum`, :func:`to_keras_momentum`).
"""
from impediments.norm.batchnorm import BatchNorm
from impediments.norm.finite import NonFiniteInputWarning, set_check_finite
from impediments.norm.fold import fold_bn, foldable_pairs
from impediments.norm.freeze import NormLayerState, freeze, frozen_state, is_batch_norm, is_frozen, unfreeze
from impediments.norm.functional import (
    batch_norm,
    from_keras_momentum,
    group_norm,
    instance_norm,
    layer_norm,
    to_keras_momentum,
)
from impediments.norm.groupnorm import GroupNorm, InstanceNorm
from impediments.norm.layernorm import LayerNorm
from impediments.norm.moments import ChannelMoments
from impediments.norm.precise import recompute_bn_stats
from impediments.norm.shift import variance_shift

__all__ = [
    "BatchNorm", "ChannelMoments", "GroupNorm", "InstanceNorm", "LayerNorm", "NonFiniteInputWarning",
    "NormLayerState", "batch_norm", "fold_bn", "foldable_pairs", "freeze", "from_keras_momentum", "frozen_state", "group_norm",
    "instance_norm", "is_batch_norm", "is_frozen", "layer_norm", "recompute_bn_stats", "set_check_finite", "to_keras_momentum",
    "unfreeze", "variance_shift",
]
