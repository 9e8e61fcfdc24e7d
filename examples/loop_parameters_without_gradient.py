"""Broken: a .detach() in forward() cuts the graph; the body below it never gets a gradient.

    impediments doctor examples/loop_parameters_without_gradient.py          # exit 1: parameters_without_gradient
    impediments doctor examples/loop_parameters_without_gradient_fixed.py    # exit 0
"""
import torch
from torch import nn

STEPS = 30


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        features = self.body(x).detach()   # BUG: (meant for logging) cuts the graph: body gets no gradient
        return self.head(features)


def model():
    torch.manual_seed(0)
    return Net()


def data():
    return "digits"
