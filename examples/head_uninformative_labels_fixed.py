"""Fixed twin of head_uninformative_labels.py: one permutation for inputs and labels, so they stay paired.

    impediments doctor examples/head_uninformative_labels_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 60


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def data():
    d = load_dataset("digits")
    perm = torch.randperm(len(d.y_train), generator=torch.Generator().manual_seed(0))
    return d.X_train[perm], d.y_train[perm]


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
