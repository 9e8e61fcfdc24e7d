"""Stack Overflow 59278771: iris (min-max scaled) with Dense(3, sigmoid) into categorical cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, sklearn_table

META = {
    "source": "https://stackoverflow.com/questions/59278771 (via deepmufl, Dataset/all-bugs/59278771)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "MinMax-scaled iris, Dense(4, relu), Dense(3, sigmoid), categorical cross-entropy, Adam",
    "fix": "softmax output: logits into CrossEntropyLoss",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("iris", seed)
    lo, hi = X.min(0).values, X.max(0).values
    X, Xe = (X - lo) / (hi - lo), (Xe - lo) / (hi - lo)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3), *([] if fixed else [nn.Sigmoid()]))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)
            nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=200, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
