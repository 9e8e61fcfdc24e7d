"""Broken: learning rate far too large (diverging_loss, exploding_gradients, non_finite).

    impediments doctor examples/diverging_lr.py     # exit 1
"""
import torch
from torch import nn

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def data():
    return "digits"


def optimizer(params):
    return torch.optim.SGD(params, lr=50.0)
