"""Broken: optimizer.step() before loss.backward(): each step finds the gradient zero_grad just cleared.

    impediments doctor examples/loop_step_before_backward.py          # exit 1: parameters_not_updated
    impediments doctor examples/loop_step_before_backward_fixed.py    # exit 0
    impediments fix examples/loop_step_before_backward.py             # the plain step, verified
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
    optimizer.step()              # BUG: before backward, so it sees no gradient and the weights never move
    loss.backward()
    return loss
