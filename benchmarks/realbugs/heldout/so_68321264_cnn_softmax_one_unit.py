"""Stack Overflow 68321264: a two-conv CNN ending in Dense(64), Dense(1), Activation('softmax'), binary CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, standardize, threshold

META = {
    "source": "https://stackoverflow.com/questions/68321264 (via deepmufl, Dataset/all-bugs/68321264)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D(64) ReLU MaxPool, Conv2D(64) ReLU MaxPool, Flatten, Dense(64), Dense(1), softmax, binary CE, Adam",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(5, 6))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 64), nn.Linear(64, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=45, batch_size=24,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
