"""Broken: the data is sorted by label and the DataLoader does not shuffle: each batch holds one or two digits.

    impediments doctor examples/loop_unshuffled_batches.py          # exit 1: unshuffled_batches
    impediments doctor examples/loop_unshuffled_batches_fixed.py    # exit 0
"""
import torch
from torch.utils.data import DataLoader, TensorDataset

import impediments as imp

STEPS = 30


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def batches(X, y, batch_size, seed):
    order = torch.argsort(y, stable=True)                  # the files were stored class by class
    loader = DataLoader(TensorDataset(X[order], y[order]), batch_size=batch_size, shuffle=False)   # BUG
    while True:
        yield from loader
