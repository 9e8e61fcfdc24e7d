"""Broken: a large negative bias kills every ReLU unit (dead_units, loss_plateau).

    impediments doctor examples/dead_relu.py        # exit 1
"""
from torch import nn

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.constant_(m.bias, -10.0)
    return net


def data():
    return "digits"
