"""Stack Overflow 51185079: a deep ReLU classifier whose output unit is also a ReLU, trained with binary CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/51185079 (via deepmufl, Dataset/all-bugs/51185079)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "34 inputs, 512-200-200-200-128 ReLU, Dense(1, relu), binary cross-entropy (Keras clips to [1e-7, 1]), RMSprop",
    "fix": "sigmoid output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 34)
    sizes = [34, 128, 50, 50, 50, 32, 1]                    # the post's widths, quartered
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers[-1] = nn.Sigmoid() if fixed else nn.ReLU()
    model = nn.Sequential(*layers)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=60, batch_size=50,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
