"""Broken: BatchNorm with batches of 4 (bn_small_batch).

    impediments doctor examples/small_batch_bn.py   # exit 1
"""
from torch import nn

import impediments as imp

BATCH_SIZE = 4


def model():
    net = imp.mlp(64, 10, width=64, depth=2, activation="relu", norm="batch")
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def data():
    return "digits"
