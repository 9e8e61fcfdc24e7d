"""Broken: the labels shuffled apart from the inputs (y permuted, X not): the loss settles at ln 10, the entropy of the
label frequencies, while the weights move and the output varies (issue 24's "labels shuffled independently").

    impediments doctor examples/head_uninformative_labels.py          # exit 1: uninformative_labels
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
    return d.X_train, d.y_train[perm]                  # BUG: labels permuted, inputs not


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
