"""Part 1 of the module: inputs, activations and initialization.

``EXPERIMENTS`` lists the experiment modules in the order the module tells
the story; the registry name of each is its file name.
"""
from __future__ import annotations

EXPERIMENTS: list[str] = [
    f"{__name__}.{name}" for name in (
        "activations",            # activation functions: saturated and linear regions
        "linear_depth",           # without an active non-linearity, depth adds no power
        "zigzag",                 # inputs: centring, standardizing, mini-batch means
        "dead_bias",              # dead ReLU units from a large negative bias
        "zero_init",              # symmetry: zero init
        "identical_init",         # symmetry: identical non-zero init
        "depth_distributions",    # variance through the layers: n·Var(W)·Var(Y)
        "glorot_he",              # Glorot & Bengio 2010, He et al. 2015
        "residual_limits",        # limits: residual networks, Fixup
        "layerwise_pretraining",  # greedy layer-wise pre-training
        "autoencoder_pca",        # the pre-training autoencoder against principal components
    )
]
