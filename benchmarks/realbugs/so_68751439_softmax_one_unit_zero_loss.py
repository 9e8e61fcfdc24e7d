"""Stack Overflow 68751439: softmax over one unit with categorical cross-entropy: the loss is exactly 0."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/68751439 (via deepmufl, Dataset/all-bugs/68751439)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense 64-128-64 relu, Dense(1, softmax), categorical cross-entropy on 0/1 labels: -y log(1) = 0",
    "fix": "Dense(1, sigmoid) with binary cross-entropy",
}


def _categorical_ce_one_unit(out, t):
    return -(t.unsqueeze(1) * torch.log_softmax(out, dim=1)).sum(1).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 250, 14, eval_fraction=0.2)
    body = [nn.Linear(14, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1)]
    model = nn.Sequential(*body, nn.Sigmoid()) if fixed else nn.Sequential(*body)
    decide = threshold() if fixed else (lambda out: (torch.softmax(out, 1)[:, 0] > 0.5).long())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce if fixed else _categorical_ce_one_unit, X, y.float(), steps=100,
                   batch_size=32, score=accuracy_score(Xe, ye, decide), seed=seed)
