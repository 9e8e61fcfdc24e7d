"""Fixed twin of head_unscaled_targets.py: the targets standardized (train on (y - mean) / std, map predictions back).

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
    return d.X_train, (y - y.mean()) / y.std()


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)


def loss_fn(output, target):
    return F.mse_loss(output, target)
