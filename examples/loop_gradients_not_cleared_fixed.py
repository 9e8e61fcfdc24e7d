"""Fixed twin of loop_gradients_not_cleared.py: zero_grad once per step, before the backward.

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
    optimizer.zero_grad(set_to_none=True)   # FIX: clear the previous step's gradient
    loss.backward()
    optimizer.step()
    return loss
