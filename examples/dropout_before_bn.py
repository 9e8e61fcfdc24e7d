"""Broken: Dropout feeding BatchNorm (dropout_before_bn).

    impediments doctor examples/dropout_before_bn.py   # exit 1
"""
import torch
from torch import nn

import impediments as imp


def model():
    net = nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(64, 64), nn.Dropout(0.5), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10),
    )
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
