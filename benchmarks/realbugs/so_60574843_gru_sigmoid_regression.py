"""Stack Overflow 60574843: a stacked GRU regressor with a sigmoid output on unscaled targets."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression

META = {
    "source": "https://stackoverflow.com/questions/60574843 (via deepmufl, Dataset/all-bugs/60574843)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "unscaled_targets", "new": True}],
    "gate": "mse",
    "bug": "GRU(512) GRU(256) GRU(256) on one time step of 12 features, Dense(1, sigmoid), MSE on raw targets, Adam",
    "fix": "linear output on standardized targets",
}


class GRURegressor(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.gru = nn.GRU(12, 32, num_layers=2, batch_first=True)
        self.out = nn.Linear(32, 1)
        self.head = nn.Identity() if fixed else nn.Sigmoid()

    def forward(self, x):
        h, _ = self.gru(x)
        return self.head(self.out(h[:, -1]))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1500, 12, eval_fraction=0.33)
    X, Xe = X.unsqueeze(1), Xe.unsqueeze(1)
    mean, std = y.mean(), y.std()
    unscale = (lambda out: out * std + mean) if fixed else None
    model = GRURegressor(fixed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.MSELoss(), X, (y - mean) / std if fixed else y, steps=150, batch_size=64,
                   score=neg_mse_score(Xe, ye, unscale), seed=seed)
