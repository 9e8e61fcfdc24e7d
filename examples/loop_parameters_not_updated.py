"""Broken: the optimizer is built over the parameters of another instance of the model.

    impediments doctor examples/loop_parameters_not_updated.py          # exit 1: parameters_not_updated
    impediments doctor examples/loop_parameters_not_updated_fixed.py    # exit 0
"""
import torch

import impediments as imp

STEPS = 30


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def optimizer(params):
    return torch.optim.SGD(model().parameters(), lr=0.1)   # BUG: a fresh model(), not the one being trained
