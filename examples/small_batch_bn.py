"""Broken: BatchNorm with batches of 4 (bn_small_batch).

    impediments doctor examples/small_batch_bn.py   # exit 1
"""

import impediments as imp

BATCH_SIZE = 4


def model():
    net = imp.mlp(64, 10, width=64, depth=2, activation="relu", norm="batch")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"
