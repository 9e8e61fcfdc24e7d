"""Broken: gradient accumulation whose counter reaches its target once in the run: one optimizer step in 60.

    impediments doctor examples/loop_optimizer_rarely_steps.py          # exit 1: optimizer_rarely_steps
    impediments doctor examples/loop_optimizer_rarely_steps_fixed.py    # exit 0
"""
import impediments as imp

STEPS = 60
ACCUMULATE = 60          # BUG: micro-batches per optimizer step as long as the run (meant: 4)


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def train_step(model, optimizer, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb) / ACCUMULATE
    loss.backward()
    if (step + 1) % ACCUMULATE == 0:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss
