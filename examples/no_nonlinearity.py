"""Broken: three stacked Linear layers with no activation between them, fitting a sine (Keras Dense layers are linear
unless given an activation): the stack is one affine map, so the loss settles at the best straight-line fit.

    impediments doctor examples/no_nonlinearity.py          # exit 1: no_nonlinearity
    impediments doctor examples/no_nonlinearity_fixed.py    # exit 0
"""
import torch
from torch import nn
from torch.nn import functional as F

STEPS = 150


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 32), nn.Linear(32, 32), nn.Linear(32, 1))   # BUG: no activation between


def data():
    x = torch.linspace(-3, 3, 512).unsqueeze(1)
    return x, torch.sin(2 * x)


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)


def loss_fn(output, target):
    return F.mse_loss(output, target)
