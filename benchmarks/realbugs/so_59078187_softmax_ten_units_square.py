"""Stack Overflow 59078187: y = x**2 regressed through Dense(10, softmax), the MNIST tutorial's head."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/59078187 (via deepmufl, Dataset/all-bugs/59078187)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "layers", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "loss_broadcast", "new": False}],
    "gate": "mse",
    "bug": "Dense(128, relu), Dropout, Dense(10, softmax), MSE against a (N, 1) target on [0, 100] (broadcast to 10 columns)",
    "fix": "one linear output unit on standardized targets",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    x = torch.linspace(0, 10, 1000).unsqueeze(1)
    y = x ** 2
    head = [nn.Linear(128, 1)] if fixed else [nn.Linear(128, 10), nn.Softmax(dim=1)]
    model = nn.Sequential(nn.Linear(1, 128), nn.ReLU(), nn.Dropout(0.2), *head)
    mean, std = y.mean(), y.std()
    unscale = (lambda out: out * std + mean) if fixed else (lambda out: out[:, :1])
    loss = nn.MSELoss() if fixed else (lambda out, t: ((out - t) ** 2).mean())   # Keras broadcasts (N,10) - (N,1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, x, (y - mean) / std if fixed else y, steps=160, batch_size=32,
                   score=neg_mse_score(x, y, unscale), seed=seed)
