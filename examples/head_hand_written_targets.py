"""Broken: a sigmoid output for standardized (signed) regression targets, under a loss written by hand
(``((out - y) ** 2).mean()``, no loss function called). The sigmoid reaches only [0, 1], so every target below 0
keeps an irreducible loss (Stack Overflow 46869312, 62068109 and 56774954 in benchmarks/realbugs/ do this under
Keras-style BCE and Poisson losses written by hand).

    impediments doctor examples/head_hand_written_targets.py          # exit 1: output_head_mismatch (error)
    impediments doctor examples/head_hand_written_targets_fixed.py    # exit 0
"""
import torch
from torch import nn

from impediments.data import load_dataset

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())   # BUG: signed targets


def data():
    d = load_dataset("digits")
    y = d.y_train.float()
    return d.X_train, ((y - y.mean()) / y.std()).unsqueeze(1)        # the digit's value, standardized


def loss_fn(output, target):
    return ((output - target) ** 2).mean()
