"""Broken: a loop that freezes every weight matrix, leaving only the biases trainable, on a network that must learn.

    impediments doctor examples/loop_almost_all_frozen.py          # exit 1: almost_all_frozen
    impediments doctor examples/loop_almost_all_frozen_fixed.py    # exit 0
"""
import impediments as imp

STEPS = 60


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    for name, p in net.named_parameters():
        p.requires_grad_(name.endswith("bias"))     # BUG: meant to freeze nothing (copied from a fine-tuning script)
    return net


def data():
    return "digits"
