"""Fixed twin of learning_rate_too_low.py: Adam at its usual lr 1e-3.

    impediments doctor examples/learning_rate_too_low_fixed.py    # exit 0
"""
import torch
from torch import nn

STEPS = 60


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def data():
    return "digits"


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
