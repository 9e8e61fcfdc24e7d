"""Fixed twin of head_dropout_on_output.py: the dropout moved before the last layer.

    impediments doctor examples/head_dropout_on_output_fixed.py    # exit 0
"""
import torch
from torch import nn

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))


def data():
    return "digits"


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
