"""Stack Overflow 50555434: six regression targets, each row divided by its own sum (ratios that can be
negative or far above 1), fitted through sigmoid output units with MAE."""
import torch
from torch import nn

from realbugs._common import Program, regression

META = {
    "source": "https://stackoverflow.com/questions/50555434 (via deepmufl, Dataset/all-bugs/50555434)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "loss",
    "bug": "28 inputs, Dense(20) Dense(15) Dense(6) relu (N(0, 0.05) init), Dense(6, sigmoid), MAE on make_regression "
           "targets divided by their row sum, Adam",
    "fix": "a linear output layer (the targets are not confined to (0, 1)); gate: minus the MAE on held-back rows",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 28, targets=6, eval_fraction=0.15)
    y, ye = y / y.sum(dim=1, keepdim=True), ye / ye.sum(dim=1, keepdim=True)
    model = nn.Sequential(nn.Linear(28, 20), nn.ReLU(), nn.Linear(20, 15), nn.ReLU(), nn.Linear(15, 6), nn.ReLU(),
                          nn.Linear(6, 6), *([] if fixed else [nn.Sigmoid()]))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.05)           # Keras kernel_initializer='normal'
            nn.init.zeros_(layer.bias)
    mae = nn.L1Loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, mae, X, y, steps=300, batch_size=32,
                   score=lambda m: -mae(m(Xe), ye).item(), seed=seed)
