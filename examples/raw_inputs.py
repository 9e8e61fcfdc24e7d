"""Broken: raw (unstandardized) digits pixels 0..16 (uncentered_inputs, unequal_input_scales).

    impediments doctor examples/raw_inputs.py       # exit 1
"""
import torch

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=2, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    d = imp.load_dataset("digits", standardize=False)
    return d.X_train, d.y_train


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)
