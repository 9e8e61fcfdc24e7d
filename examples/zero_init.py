"""Broken: all weights zero, so the hidden units never differ (symmetric_units).

    impediments doctor examples/zero_init.py        # exit 1
"""

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=32, depth=2, activation="tanh")
    imp.init.initialize(net, "zeros", bias=0.0)
    return net


def data():
    return "digits"
