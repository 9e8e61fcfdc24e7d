"""Fixed twin of loop_parameters_without_gradient.py: no .detach() on the path to the loss.

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
        features = self.body(x)            # FIX: detach only a copy kept for logging
        return self.head(features)


def model():
    torch.manual_seed(0)
    return Net()


def data():
    return "digits"
