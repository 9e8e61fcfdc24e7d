"""Broken: a Dropout(0.5) after the classifier's last layer (a Keras Dense(10) -> Dropout -> softmax): half the logits
are zeroed at every training step (Stack Overflow 44755431).

    impediments doctor examples/head_dropout_on_output.py          # exit 1: dropout_on_output
    impediments doctor examples/head_dropout_on_output_fixed.py    # exit 0
"""
import torch
from torch import nn

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Dropout(0.5))   # BUG: dropout on logits


def data():
    return "digits"


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
