"""Stack Overflow 48976413: a car-price regression (prices in the thousands to tens of thousands) fitted
through a sigmoid output unit with MSE."""
import numpy as np
import torch
from torch import nn

from realbugs._common import Program, as_tensors, neg_mse_score, _split

META = {
    "source": "https://stackoverflow.com/questions/48976413 (via deepmufl, Dataset/all-bugs/48976413)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": False}, {"code": "unscaled_targets", "new": False}],
    "gate": "mse",
    "bug": "5 min-max-scaled inputs, Dense(12, relu, N(0, 0.05) init), Dense(8, relu), Dense(1, sigmoid), MSE on "
           "raw prices (about 600 to 28,000), Adam, batch 50",
    "fix": "linear output unit trained on standardized prices (predictions mapped back to the original units)",
}


def _cars(seed: int):
    """962 cars, 5 features in [0, 1] (after the post's MinMaxScaler), a price of 600-30,000 that depends on them."""
    rng = np.random.default_rng(1000 + seed)
    X = rng.uniform(0, 1, size=(962, 5)).astype(np.float32)
    price = 600 + 27_000 * (0.45 * X[:, 0] + 0.25 * X[:, 3] ** 2 + 0.2 * X[:, 4] + 0.1 * X[:, 1] * X[:, 2])
    price = price + rng.normal(0, 800, size=962)
    return as_tensors(*_split(X, price.reshape(-1, 1).astype(np.float32), seed, 0.2))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = _cars(seed)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 1),
                          *([] if fixed else [nn.Sigmoid()]))
    nn.init.normal_(model[0].weight, std=0.05)                # Keras kernel_initializer='normal'
    nn.init.zeros_(model[0].bias)
    mean, std = y.mean(), y.std()
    unscale = (lambda out: out * std + mean) if fixed else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss(), X, (y - mean) / std if fixed else y, steps=240, batch_size=50,
                   score=neg_mse_score(Xe, ye, unscale), seed=seed)
