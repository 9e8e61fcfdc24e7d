"""Broken: next(iter(loader)) inside the loop restarts the iterator: the same first batch every step.

    impediments doctor examples/loop_repeated_batch.py          # exit 1: repeated_batch
    impediments doctor examples/loop_repeated_batch_fixed.py    # exit 0
"""
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
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size)
    while True:
        yield next(iter(loader))         # BUG: a fresh iterator each step yields the first batch again
