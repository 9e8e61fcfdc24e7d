"""Broken: a deep sigmoid MLP with a large init variance (saturated_units, vanishing_gradients).

    impediments doctor examples/saturated_sigmoid.py   # exit 1
"""
from torch import nn

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=5, activation="sigmoid")
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=12.0 / m.in_features ** 0.5)
            nn.init.zeros_(m.bias)
    return net


def data():
    return "digits"
