"""Stack Overflow 46247619: a Conv1D regressor that cannot overfit five examples: its output is a ReLU."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/46247619 (via deepmufl, Dataset/all-bugs/46247619)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Conv1D x3 + Dense stack ending in Dense(1, relu) on make_regression targets (half negative), MSE, Adam",
    "fix": "a linear output unit: a ReLU cannot produce the negative targets",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, _, _ = regression(seed, 200, 50)
    X, y = X[:5].reshape(5, 1, 50), y[:5]                   # the post trains on train_limit = 5 examples
    layers = [nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Conv1d(8, 8, 3), nn.ReLU(), nn.Conv1d(8, 16, 3), nn.ReLU(),
              nn.Flatten(), nn.Linear(16 * 44, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)]
    model = nn.Sequential(*layers, *([] if fixed else [nn.ReLU()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss(), X, y, steps=300, batch_size=None,
                   score=neg_mse_score(X, y), seed=seed)
