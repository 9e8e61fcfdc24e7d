"""Stack Overflow 60355380: a deep CNN on 5x5 inputs ending in Dense(1, softmax), binary cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/60355380 (via deepmufl, Dataset/all-bugs/60355380)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D 32-32-128-128-128-128 with pooling, Dense 128-64-32 relu, Dense(1, softmax), binary CE, Adam",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 25, informative=6)
    X, Xe = X.reshape(-1, 1, 5, 5), Xe.reshape(-1, 1, 5, 5)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 9, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                          nn.Linear(32, 1), nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=100, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
