"""Stack Overflow 31880720: a binary classifier whose single output unit goes through softmax.

Softmax over one unit is exactly 1 for every input, so the loss is constant and no gradient flows.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/31880720 (via deepmufl, Dataset/all-bugs/31880720)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(1) followed by softmax, trained with binary cross-entropy under RMSprop",
    "fix": "sigmoid on the single output unit (softmax over one unit is constant 1)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = 1000                                            # the post: 10**4 rows of ones and 10**4 of zeros, 128 wide
    X = torch.cat([torch.ones(n, 128), torch.zeros(n, 128)]) + 0.05 * torch.randn(2 * n, 128, generator=gen)
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    Xe = torch.cat([torch.ones(100, 128), torch.zeros(100, 128)]) + 0.05 * torch.randn(200, 128, generator=gen)
    ye = torch.cat([torch.ones(100), torch.zeros(100)])
    head = nn.Sigmoid() if fixed else nn.Softmax(dim=1)
    model = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 50), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(50, 1), head)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y, steps=150, batch_size=24,
                   score=accuracy_score(Xe, ye.long(), threshold()), seed=seed)
