"""Broken: the loop never calls optimizer.zero_grad(), so every step adds to all earlier gradients.

    impediments doctor examples/loop_gradients_not_cleared.py          # exit 1: gradients_not_cleared
    impediments doctor examples/loop_gradients_not_cleared_fixed.py    # exit 0
"""
import impediments as imp

STEPS = 30


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def train_step(model, optimizer, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    loss.backward()                  # BUG: no optimizer.zero_grad(): .grad still holds every earlier gradient
    optimizer.step()
    return loss
