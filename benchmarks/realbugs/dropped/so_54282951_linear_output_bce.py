"""Stack Overflow 54282951: an image classifier whose Dense(1) output has no activation, trained with binary CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/54282951 (via deepmufl, Dataset/all-bugs/54282951)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D(32, 1x1), Flatten, Dense(64), Dropout, Dense(1) linear, binary cross-entropy on probabilities, RMSprop",
    "fix": "sigmoid on the output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 400, 3 * 8 * 8, informative=10)
    X, Xe = X.reshape(-1, 3, 8, 8), Xe.reshape(-1, 3, 8, 8)
    model = nn.Sequential(nn.Conv2d(3, 32, 1), nn.Flatten(), nn.Linear(32 * 64, 64), nn.Dropout(0.5),
                          nn.Linear(64, 1), *([nn.Sigmoid()] if fixed else []))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=150, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
