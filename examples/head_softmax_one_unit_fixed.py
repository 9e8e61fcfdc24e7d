"""Fixed twin of head_softmax_one_unit.py: one unit with a sigmoid (a probability), the same loss.

    impediments doctor examples/head_softmax_one_unit_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())


def data():
    d = load_dataset("digits")
    return d.X_train, (d.y_train % 2).float().unsqueeze(1)


def loss_fn(output, target):
    p = output.clamp(1e-7, 1 - 1e-7)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()
