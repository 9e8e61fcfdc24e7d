"""A healthy setup: standardized digits, ReLU MLP with He init, SGD lr 0.1.

    impediments doctor examples/healthy_mlp.py      # exit 0: no warning or error
"""
import torch

import impediments as imp

STEPS = 150


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"          # loaded standardized


def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
