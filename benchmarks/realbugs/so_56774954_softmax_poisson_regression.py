"""Stack Overflow 56774954: three real-valued targets through a softmax head with the Poisson loss."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/56774954 (via deepmufl, Dataset/all-bugs/56774954)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense(100, sigmoid), Dense(80, sigmoid), Dense(3, softmax), loss='poisson' on make_regression targets, Adam",
    "fix": "linear output and mean squared error on standardized targets",
}


def _keras_poisson(out, t):
    return (out - t * torch.log(out + 1e-7)).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 10, targets=3)
    body = [nn.Linear(10, 100), nn.Sigmoid(), nn.Linear(100, 80), nn.Sigmoid(), nn.Linear(80, 3)]
    opt_for = lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)
    if fixed:
        model = nn.Sequential(*body)
        mean, std = y.mean(0), y.std(0)
        return Program(model, opt_for(model), nn.MSELoss(), X, (y - mean) / std, steps=200, batch_size=32,
                       score=neg_mse_score(Xe, ye, lambda out: out * std + mean), seed=seed)
    model = nn.Sequential(*body, nn.Softmax(dim=1))
    return Program(model, opt_for(model), _keras_poisson, X, y, steps=200, batch_size=32,
                   score=neg_mse_score(Xe, ye), seed=seed)
