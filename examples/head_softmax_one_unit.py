"""Broken: a binary classifier ending in a softmax over ONE unit (a Keras port of Dense(1, activation="softmax")),
trained with a hand-written binary cross-entropy. softmax(z) = exp(z) / exp(z) = 1 for every input: the output is
constant and no gradient reaches the network (Stack Overflow 31880720 and nine more in benchmarks/realbugs/).

    impediments doctor examples/head_softmax_one_unit.py          # exit 1: output_head_mismatch (error)
    impediments doctor examples/head_softmax_one_unit_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Softmax(dim=1))   # BUG: softmax over 1


def data():
    d = load_dataset("digits")
    return d.X_train, (d.y_train % 2).float().unsqueeze(1)          # even / odd digit


def loss_fn(output, target):
    p = output.clamp(1e-7, 1 - 1e-7)                 # Keras's binary_crossentropy on probabilities
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()
