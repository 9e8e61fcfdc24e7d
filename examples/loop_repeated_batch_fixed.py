"""Fixed twin of loop_repeated_batch.py: one iterator per epoch, shuffled.

    impediments doctor examples/loop_repeated_batch_fixed.py    # exit 0
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
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    while True:
        yield from loader                # FIX: iterate the loader; a new epoch starts when it is exhausted
