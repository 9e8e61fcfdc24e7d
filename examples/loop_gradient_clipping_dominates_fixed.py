"""Fixed twin of loop_gradient_clipping_dominates.py: max_norm near the typical gradient norm (clips only spikes).

    impediments doctor examples/loop_gradient_clipping_dominates_fixed.py    # exit 0
"""
import torch

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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)   # FIX: bites only on spikes
    optimizer.step()
    return loss
