"""Broken: a regression whose targets are in raw units (price-like: mean 300, std 80) while the output layer starts
at order 1: its weights must grow 300x, and Adam at lr 1e-3 needs ~3e5 steps to move the output bias to the mean.

    impediments doctor examples/head_unscaled_targets.py          # exit 1: unscaled_targets
    impediments doctor examples/head_unscaled_targets_fixed.py    # exit 0
"""
import torch
from torch import nn
from torch.nn import functional as F

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def data():
    d = load_dataset("digits")
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 1, generator=g) / 8
    y = d.X_train @ w                                  # a linear target of the standardized pixels
    return d.X_train, 300 + 80 * (y - y.mean()) / y.std()        # BUG: raw units


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)


def loss_fn(output, target):
    return F.mse_loss(output, target)
