"""Stack Overflow 66087653: Dense layers over a (10, 150) input, Flatten, and Dense(1, softmax) at batch 2."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/66087653 (via deepmufl, Dataset/all-bugs/66087653)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(32, relu) per row of a (10, 150) input, Flatten, Dense(128) x2, Dense(1, softmax), binary CE, Adam",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 600, 10 * 30, informative=8)
    X, Xe = X.reshape(-1, 10, 30), Xe.reshape(-1, 10, 30)   # (10, 150) rows, narrowed to 30
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Flatten(), nn.Linear(320, 64), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=200, batch_size=2,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
