"""Stack Overflow 62313327: learning y = x[1] in [-1, 1] through a one-unit ReLU and a sigmoid output."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/62313327 (via deepmufl, Dataset/all-bugs/62313327)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "mse",
    "bug": "Dense(1, relu), Dense(1, sigmoid), MSE, Adam 0.01: the output cannot go below 0, the target can reach -1",
    "fix": "linear layers without the ReLU and the sigmoid",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(4000, 30, generator=gen) * 2 - 1
    y = X[:, 1:2].clone()
    if fixed:
        model = nn.Sequential(nn.Linear(30, 1), nn.Linear(1, 1))
    else:
        model = nn.Sequential(nn.Linear(30, 1), nn.ReLU(), nn.Linear(1, 1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    return Program(model, opt, nn.MSELoss(), X[:3000], y[:3000], steps=200, batch_size=32,
                   score=neg_mse_score(X[3000:], y[3000:]), seed=seed)
