"""Fixed twin of loop_parameters_not_updated.py: the optimizer gets the trained model's parameters.

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
    return torch.optim.SGD(params, lr=0.1)   # FIX: the parameters of the model being trained
