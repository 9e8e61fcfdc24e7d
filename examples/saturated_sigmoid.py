"""Broken: a deep sigmoid MLP with a large init variance (init_scale_too_large, saturated_units).

The doctor names the init as the cause (``init_scale_too_large``: each layer multiplies its input's
variance by about 130, where a variance-preserving init gives 1) and, caused by it, ``saturated_units``
(about 60% of the pre-activations in the sigmoid's flat tails: the outputs pile up at 0 and 1, as the
HTML report's linear-bin histograms show) and ``initial_loss_high``. It does not report
``vanishing_gradients``: in these 60 steps the gradient reaching the first layer is about as large as the
last's, since the large weights that saturate the units also multiply the gradient they pass back.

    impediments doctor examples/saturated_sigmoid.py   # exit 1
"""

import impediments as imp


def model():
    net = imp.mlp(64, 10, width=64, depth=5, activation="sigmoid")
    imp.init.initialize(net, "normal", std=1.5, bias=0.0, seed=0)   # std 1.5 x sqrt(64 inputs) = 12 pre-activation
    return net


def data():
    return "digits"
