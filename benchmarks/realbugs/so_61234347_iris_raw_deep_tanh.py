"""Stack Overflow 61234347: raw iris features into a 1000-wide, 8-layer tanh net trained for a single epoch."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, sklearn_table, standardize

META = {
    "source": "https://stackoverflow.com/questions/61234347 (via deepmufl, Dataset/all-bugs/61234347)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["preprocessing_inputs", "epochs"],
    "expected": [{"code": "uncentered_inputs", "new": False}, {"code": "unequal_input_scales", "new": False},
                 {"code": "saturated_units", "new": False}],
    "gate": "accuracy",
    "bug": "tanh 1000-500-250-125-64-32-9 then Dense(3, softmax) on raw iris, Adam, model.fit with 1 epoch",
    "fix": "standardized features (same single short run)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("iris", seed)
    if fixed:
        X, Xe = standardize(X, Xe)
    sizes, layers = [4, 250, 125, 64, 32, 16, 9], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(9, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=12, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
