"""Fixed twin of no_nonlinearity.py: a tanh after each hidden Linear, so the stack can bend to the sine.

    impediments doctor examples/no_nonlinearity_fixed.py    # exit 0
"""
import torch
from torch import nn
from torch.nn import functional as F

STEPS = 150


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def data():
    x = torch.linspace(-3, 3, 512).unsqueeze(1)
    return x, torch.sin(2 * x)


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)


def loss_fn(output, target):
    return F.mse_loss(output, target)
