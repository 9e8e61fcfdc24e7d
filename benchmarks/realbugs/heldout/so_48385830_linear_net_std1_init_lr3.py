"""Stack Overflow 48385830: Nielsen's 784-30-10 MNIST net in Keras, without its sigmoids, at lr 3.0.

Keras ``Dense`` is linear by default; with N(0, 1) weights and biases and SGD at lr 3.0 on MSE the purely
linear network blows up.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, onehot


META = {
    "source": "https://stackoverflow.com/questions/48385830 (via deepmufl, Dataset/all-bugs/48385830)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "learning_rate", "init"],
    "expected": [{"code": "diverging_loss", "new": False}, {"code": "exploding_gradients", "new": False},
                 {"code": "initial_loss_too_high", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(30), Dense(10) with no activation, weights and biases N(0, 1), MSE on one-hot, SGD lr 3.0",
    "fix": "sigmoid after each Dense layer, as in the book the program follows",
}


def _std1(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0)
            nn.init.normal_(m.bias, std=1.0)
    return model


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = X / 16, Xe / 16                                 # the post scales pixels to [0, 1]
    act = nn.Sigmoid if fixed else nn.Identity
    model = _std1(nn.Sequential(nn.Linear(64, 30), act(), nn.Linear(30, 10), act()))
    opt = torch.optim.SGD(model.parameters(), lr=3.0)
    return Program(model, opt, nn.MSELoss(), X, onehot(y, 10), steps=300, batch_size=10,
                   score=accuracy_score(Xe, ye), seed=seed)
