"""Stack Overflow 65777704: a widening stack of five sigmoid layers (8-16-32-64-128) before a softmax classifier."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/65777704 (via deepmufl, Dataset/all-bugs/65777704)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "vanishing_gradients", "new": False}, {"code": "saturated_units", "new": False}],
    "gate": "accuracy",
    "bug": "Flatten, Dense 8-16-32-64-128 all sigmoid, Dense(10, softmax), categorical CE, Adam, batch 500",
    "fix": "ReLU hidden layers",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = standardize(X, Xe)
    act = nn.ReLU if fixed else nn.Sigmoid
    sizes, layers = [64, 8, 16, 32, 64, 128], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    model = nn.Sequential(*layers, nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=500,
                   score=accuracy_score(Xe, ye), seed=seed)
