"""Stack Overflow 69787272: a binary classifier with a one-unit ReLU layer and a ReLU output unit trained with
binary cross-entropy by plain SGD."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/69787272 (via deepmufl, Dataset/all-bugs/69787272)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "layers"],
    "expected": [{"code": "output_head_mismatch", "new": False}, {"code": "dead_units", "new": False}],
    "gate": "accuracy",
    "bug": "31 inputs, Dense(31, relu), Dense(1, relu), Dense(1, relu), binary cross-entropy (Keras clips the ReLU "
           "output into [1e-7, 1 - 1e-7]), SGD lr 0.01, batch 500, 10 epochs (here 60 steps of 64)",
    "fix": "a sigmoid output unit and no ReLU on the one-unit layer (the standard binary head)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 31)
    model = nn.Sequential(nn.Linear(31, 31), nn.ReLU(), nn.Linear(31, 1), *([] if fixed else [nn.ReLU()]),
                          nn.Linear(1, 1), nn.Sigmoid() if fixed else nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return Program(model, opt, keras_bce, X, y.float(), steps=60, batch_size=64,
                   score=accuracy_score(Xe, ye, threshold(0.5)), seed=seed)
