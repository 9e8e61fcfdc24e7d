"""Broken: learning rate far too large (diverging_loss, exploding_gradients, non_finite).

    impediments doctor examples/diverging_lr.py     # exit 1
"""
import torch

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def optimizer(params):
    return torch.optim.SGD(params, lr=50.0)
