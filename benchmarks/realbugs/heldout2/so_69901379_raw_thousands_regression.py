"""Stack Overflow 69901379: inputs in the hundreds to thousands and targets of 600-4000, fed raw to a ReLU MLP
trained by Adam at lr 1e-4."""
import numpy as np
import torch
from torch import nn

from realbugs._common import Program, _split, as_tensors, neg_mse_score, standardize

META = {
    "source": "https://stackoverflow.com/questions/69901379 (via deepmufl, Dataset/all-bugs/69901379)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["preprocessing_inputs", "preprocessing_targets"],
    "expected": [{"code": "unscaled_targets", "new": False}, {"code": "uncentered_inputs", "new": False}],
    "gate": "mse",
    "bug": "50 rows, 10 integer inputs in [50, 2000), integer targets in [600, 4000) (random, as in the post), "
           "four Dense(16, relu), Dense(1), MSE, Adam lr 1e-4, batch 32",
    "fix": "standardized inputs and targets (training-set statistics; predictions mapped back to the original units)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    rng = np.random.default_rng(3000 + seed)
    x = rng.integers(50, 2000, size=(200, 10)).astype(np.float32)
    t = rng.integers(600, 4000, size=(200, 1)).astype(np.float32)
    X, y, Xe, ye = as_tensors(*_split(x, t, seed, 0.75))       # 50 training rows, as in the post
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    unscale = None
    if fixed:
        X, Xe = standardize(X, Xe)
        mean, std = y.mean(), y.std()
        y, unscale = (y - mean) / std, (lambda out: out * std + mean)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return Program(model, opt, nn.MSELoss(), X, y, steps=300, batch_size=32, score=neg_mse_score(Xe, ye, unscale),
                   seed=seed)
