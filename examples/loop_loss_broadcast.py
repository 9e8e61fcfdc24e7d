"""Broken: a one-output regression head returns (N, 1), the target is (N,): mse_loss broadcasts to (N, N).

    impediments doctor examples/loop_loss_broadcast.py          # exit 1: loss_broadcast
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
    return d.X_train, d.y_train.float() / 9          # regress the digit's value, shape (N,)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.05)


def loss_fn(output, target):
    return F.mse_loss(output, target)                  # BUG: (N, 1) vs (N,): every output against every target
