"""Stack Overflow 56452176: learning y = x / 2 through a one-unit ReLU layer and a ReLU output."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/56452176 (via deepmufl, Dataset/all-bugs/56452176)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "layers"],
    "expected": [{"code": "dead_units", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense(1, relu), Dense(9, relu), Dense(1, relu), MSE, Adam 0.01 on five points of y = x / 2",
    "fix": "no ReLU on the one-unit input layer nor on the output (a dead single unit stops everything)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([[.5], [1.0], [.4], [5.], [25.]])
    Y = X / 2
    act = nn.Identity if fixed else nn.ReLU
    model = nn.Sequential(nn.Linear(1, 1), act(), nn.Linear(1, 9), nn.ReLU(), nn.Linear(9, 1), act())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    return Program(model, opt, nn.MSELoss(), X, Y, steps=300, batch_size=None, score=neg_mse_score(X, Y), seed=seed)
