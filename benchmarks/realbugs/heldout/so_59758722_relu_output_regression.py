"""Stack Overflow 59758722: a ReLU output unit for make_regression targets, half of which are negative."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/59758722 (via deepmufl, Dataset/all-bugs/59758722)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense(30, relu), Dense(30, relu), Dense(1, relu), MSE, RMSprop, batch 128",
    "fix": "linear output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 4)
    model = nn.Sequential(nn.Linear(4, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 1),
                          *([] if fixed else [nn.ReLU()]))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    return Program(model, opt, nn.MSELoss(), X, y, steps=100, batch_size=128, score=neg_mse_score(Xe, ye), seed=seed)
