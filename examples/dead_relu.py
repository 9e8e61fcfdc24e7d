"""Broken: a large negative bias kills every ReLU unit (dead_units, loss_plateau).

    impediments doctor examples/dead_relu.py        # exit 1
"""

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=-10.0, seed=0)
    return net


def data():
    return "digits"
