"""Initialization: one variance-scaling core, named presets, LSUV, Fixup, layer-wise pre-training.

>>> from impediments import init
>>> rows = init.initialize(model, "he_normal", bias=0.0, seed=0)   # doctest: +SKIP
>>> init.he_normal(torch.empty(256, 128))                          # a weight tensor  # doctest: +SKIP

Every preset works on a weight tensor (fills it, returns it) or on a model/layer
(``initialize(model, preset, bias=, seed=, generator=, layers=)``, returns the summary).
"""
from impediments.init.fixup import FixupSummary, fixup
from impediments.init.initialize import (
    INITIALIZABLE,
    SCHEMES,
    LayerInit,
    constant,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    identical,
    initialize,
    lecun_normal,
    lecun_uniform,
    normal,
    orthogonal,
    uniform,
    zeros,
)
from impediments.init.lsuv import LSUVLayer, lsuv
from impediments.init.predict import predicted_variances, second_moment
from impediments.init.pretrain import PretrainLayer, pretrain_layerwise
from impediments.init.variance_scaling import DISTRIBUTIONS, MODES, fans, variance_scaling

__all__ = [
    "DISTRIBUTIONS", "INITIALIZABLE", "MODES", "SCHEMES", "FixupSummary", "LSUVLayer", "LayerInit", "PretrainLayer",
    "constant", "fans", "fixup", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "identical",
    "initialize", "lecun_normal", "lecun_uniform", "lsuv", "normal", "orthogonal", "predicted_variances",
    "pretrain_layerwise", "second_moment", "uniform", "variance_scaling", "zeros",
]
