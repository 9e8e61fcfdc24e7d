"""Stack Overflow 53749895: three regression targets predicted through a softmax (they must sum to 1)."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/53749895 (via deepmufl, Dataset/all-bugs/53749895)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense(32, relu), Dense(3, softmax), MSE on raw make_regression targets, SGD 0.01 momentum 0.9",
    "fix": "linear output on standardized targets",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 64, targets=3, informative=3, eval_fraction=0.2)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3), *([] if fixed else [nn.Softmax(dim=1)]))
    mean, std = y.mean(0), y.std(0)
    unscale = (lambda out: out * std + mean) if fixed else None
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return Program(model, opt, nn.MSELoss(), X, (y - mean) / std if fixed else y, steps=200, batch_size=32,
                   score=neg_mse_score(Xe, ye, unscale), seed=seed)
