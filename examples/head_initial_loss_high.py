"""Broken: every Linear initialized with nn.init.normal_ at its default std 1.0 (the easy mistake of issue 25): each
layer multiplies its input variance by about fan_in (64), the logits come out tens of units wide, and the loss at
step 0 is tens of nats where a uniform prediction scores ln 10 = 2.3.

    impediments doctor examples/head_initial_loss_high.py          # exit 1: initial_loss_high
    impediments doctor examples/head_initial_loss_high_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    for layer in (net[0], net[2]):
        nn.init.normal_(layer.weight)                # BUG: std 1.0 on 64 inputs (should be about 1/sqrt(64))
    return net


def data():
    d = load_dataset("digits")
    return d.X_train, d.y_train


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
