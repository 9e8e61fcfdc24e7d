"""Fixed twin of loop_learning_rate_collapsed.py: the scheduler steps once per epoch.

    impediments doctor examples/loop_learning_rate_collapsed_fixed.py    # exit 0
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


def scheduler(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.1)


def train_step(model, optimizer, loss_fn, xb, yb, step, scheduler):
    loss = loss_fn(model(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if (step + 1) % (1437 // 64) == 0:      # FIX: once per epoch (digits: 1437 training examples, batch 64)
        scheduler.step()
    return loss
