"""Stack Overflow 52566823: make_regression targets (hundreds, both signs) fitted through a sigmoid output."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/52566823 (via deepmufl, Dataset/all-bugs/52566823)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "unscaled_targets", "new": True}],
    "gate": "mse",
    "bug": "5-4-1 sigmoid net, output sigmoid, MSE on raw make_regression targets, SGD lr 0.1, unshuffled",
    "fix": "linear output trained on standardized targets (predictions mapped back to the original units)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 5, eval_fraction=0.3)
    model = nn.Sequential(nn.Linear(5, 5), nn.Sigmoid(), nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 1),
                          *([] if fixed else [nn.Sigmoid()]))
    mean, std = y.mean(), y.std()
    unscale = (lambda out: out * std + mean) if fixed else None
    target = (y - mean) / std if fixed else y
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Program(model, opt, nn.MSELoss(), X, target, steps=200, batch_size=32,
                   score=neg_mse_score(Xe, ye, unscale), seed=seed)
