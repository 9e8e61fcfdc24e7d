"""Fixed twin of loop_unshuffled_batches.py: the same sorted data, shuffled by the DataLoader every epoch.

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
    order = torch.argsort(y, stable=True)
    loader = DataLoader(TensorDataset(X[order], y[order]), batch_size=batch_size, shuffle=True,   # FIX
                        generator=torch.Generator().manual_seed(seed))
    while True:
        yield from loader
