"""Fixed twin of loop_loss_broadcast.py: output and target have the same shape.

    impediments doctor examples/loop_loss_broadcast_fixed.py    # exit 0
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
    return d.X_train, d.y_train.float() / 9


def optimizer(params):
    return torch.optim.SGD(params, lr=0.05)


def loss_fn(output, target):
    return F.mse_loss(output.squeeze(1), target)       # FIX: (N,) vs (N,)
