"""Fixed twin of loop_almost_all_frozen.py: every parameter trainable.

    impediments doctor examples/loop_almost_all_frozen_fixed.py    # exit 0
"""
import impediments as imp

STEPS = 60


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net                                        # FIX: nothing frozen


def data():
    return "digits"
