"""A healthy setup: standardized digits, ReLU MLP with He init, SGD lr 0.1.

    impediments doctor examples/healthy_mlp.py      # exit 0: no warning or error
"""
import torch
from torch import nn

import impediments as imp

STEPS = 150


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def data():
    return "digits"          # loaded standardized


def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
