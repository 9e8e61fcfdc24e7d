"""Fixed twin of loop_step_before_backward.py: backward first, then the step that uses its gradient.

    impediments doctor examples/loop_step_before_backward_fixed.py    # exit 0
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
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(xb), yb)
    loss.backward()
    optimizer.step()              # FIX: after backward
    return loss
