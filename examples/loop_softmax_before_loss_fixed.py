"""Fixed twin of loop_softmax_before_loss.py: cross_entropy gets the logits.

    impediments doctor examples/loop_softmax_before_loss_fixed.py    # exit 0
"""
import torch
from torch import nn
from torch.nn import functional as F

STEPS = 30


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))   # FIX: logits out; softmax at inference


def data():
    return "digits"


def loss_fn(output, target):
    return F.cross_entropy(output, target)
