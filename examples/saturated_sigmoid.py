"""Broken: a deep sigmoid MLP with a large init variance (saturated_units, vanishing_gradients).

    impediments doctor examples/saturated_sigmoid.py   # exit 1
"""

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=5, activation="sigmoid")
    imp.init.initialize(net, "normal", std=1.5, bias=0.0, seed=0)   # std 1.5 x sqrt(64 inputs) = 12 pre-activation
    return net


def data():
    return "digits"
