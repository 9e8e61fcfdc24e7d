"""Stack Overflow 60801900: a dense autoencoder with a ReLU output for inputs scaled to [-1.92, 1.92]."""
import torch
from torch import nn

from realbugs._common import Program, classification, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/60801900 (via deepmufl, Dataset/all-bugs/60801900)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense 128-64-32-64-128 ReLU, Dense(3, relu) reconstructing inputs half of which are negative, MSE, Adam",
    "fix": "linear output layer",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, _, Xe, _ = classification(seed, 200, 40 * 3, informative=10)
    lo, hi = X.min(), X.max()
    scale = lambda t: (t - lo) / (hi - lo) * 3.8479 - 1.9237        # MinMaxScaler(feature_range=(-1.92, 1.92))
    X, Xe = scale(X).reshape(-1, 40, 3), scale(Xe).reshape(-1, 40, 3)
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                          nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3),
                          *([] if fixed else [nn.ReLU()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss(), X, X, steps=200, batch_size=2, score=neg_mse_score(Xe, Xe), seed=seed)
