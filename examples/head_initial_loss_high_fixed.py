"""Fixed twin of head_initial_loss_high.py: every Linear keeps PyTorch's default init (std 1/sqrt(3 fan_in)).

    impediments doctor examples/head_initial_loss_high_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return net


def data():
    d = load_dataset("digits")
    return d.X_train, d.y_train


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
