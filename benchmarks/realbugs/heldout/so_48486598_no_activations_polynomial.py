"""Stack Overflow 48486598: fitting a quintic polynomial with a network that has no nonlinearity at all."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/48486598 (via deepmufl, Dataset/all-bugs/48486598)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "layers"],
    "expected": [{"code": "no_nonlinearity", "new": True}],   # was linear_regime, which needs an activation to judge
    "gate": "mse",
    "bug": "Dense(1), Dense(5), Dense(1) all linear, MAE, Adam: the whole network is one affine map",
    "fix": "nonlinear hidden layers (tanh, 32 wide)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    x = torch.arange(0.0, 10.0, 0.05)
    y = 0.05 * (15.72807 * x - 7.273893 * x ** 2 + 1.4912 * x ** 3 - 0.1384615 * x ** 4 + 0.00474359 * x ** 5)
    X, Y = x.unsqueeze(1), y.unsqueeze(1)
    if fixed:
        model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    else:
        model = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 5), nn.Linear(5, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Program(model, opt, nn.L1Loss(), X, Y, steps=300, batch_size=10,
                   score=neg_mse_score(X, Y), seed=seed)
