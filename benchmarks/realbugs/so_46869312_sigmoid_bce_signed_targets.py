"""Stack Overflow 46869312: regression targets rescaled to [-1, 1], fitted by a sigmoid unit with binary CE."""
import torch
from torch import nn

from realbugs._common import Program, keras_bce, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/46869312 (via deepmufl, Dataset/all-bugs/46869312)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "y = 2 (y - min) / (max - min) - 1; Dense(64, relu), Dense(32, relu), Dense(1, sigmoid), binary CE, Adam",
    "fix": "a linear output with mean squared error for a real-valued target in [-1, 1]",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 2000, 64, eval_fraction=0.2)
    lo, hi = y.min(), y.max()
    y, ye = 2 * (y - lo) / (hi - lo) - 1, 2 * (ye - lo) / (hi - lo) - 1
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1),
                          *([] if fixed else [nn.Sigmoid()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss() if fixed else keras_bce, X, y, steps=150, batch_size=200 // 4,
                   score=neg_mse_score(Xe, ye), seed=seed)
