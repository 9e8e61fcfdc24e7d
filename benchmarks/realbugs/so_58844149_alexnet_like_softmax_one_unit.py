"""Stack Overflow 58844149: an AlexNet-like CNN ending in Dense(1) + Activation('softmax'), binary CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, standardize, threshold

META = {
    "source": "https://stackoverflow.com/questions/58844149 (via deepmufl, Dataset/all-bugs/58844149)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D(96, 11x11), pools, Conv2D(128) x2, Dense(300), Dropout, Dense(1), softmax, binary CE, Adam",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(4, 9))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(24, 32, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(32 * 4, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=60, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
