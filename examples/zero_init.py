"""Broken: all weights zero, so the hidden units never differ (symmetric_units).

    impediments doctor examples/zero_init.py        # exit 1
"""
from torch import nn

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=32, depth=2, activation="tanh")
    for p in net.parameters():
        nn.init.zeros_(p)
    return net


def data():
    return "digits"
