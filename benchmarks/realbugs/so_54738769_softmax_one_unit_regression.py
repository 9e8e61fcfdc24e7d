"""Stack Overflow 54738769: a regression network whose single output unit goes through softmax (always 1)."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/54738769 (via deepmufl, Dataset/all-bugs/54738769)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "18 inputs, tanh then ReLU 36-72-72-32-16, Dense(1, softmax), MSE, Adam",
    "fix": "linear output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 140, 18, eval_fraction=0.3)
    model = nn.Sequential(nn.Linear(18, 18), nn.Tanh(), nn.Linear(18, 36), nn.ReLU(), nn.Linear(36, 72), nn.ReLU(),
                          nn.Linear(72, 72), nn.ReLU(), nn.Linear(72, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                          nn.Linear(16, 1), *([] if fixed else [nn.Softmax(dim=1)]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss(), X, y, steps=300, batch_size=35, score=neg_mse_score(Xe, ye), seed=seed)
