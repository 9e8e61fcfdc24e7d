"""Broken: Adam at lr 1e-5, a hundred times below its usual 1e-3 (a rate copied from a fine-tuning recipe onto a network
trained from scratch): each step moves the weights about 1e-4 of themselves, and in 60 steps the loss stays near ln 10.

    impediments doctor examples/learning_rate_too_low.py          # exit 1: learning_rate_too_low
    impediments doctor examples/learning_rate_too_low_fixed.py    # exit 0
"""
import torch
from torch import nn

STEPS = 60


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def data():
    return "digits"


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-5)          # BUG: a fine-tuning rate for a network trained from scratch
