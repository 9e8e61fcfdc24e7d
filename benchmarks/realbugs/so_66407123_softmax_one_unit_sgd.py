"""Stack Overflow 66407123: a binary classifier with softmax over one unit, binary CE and plain SGD."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/66407123 (via deepmufl, Dataset/all-bugs/66407123)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(32, relu), Dense(32, relu), Dense(1, softmax), binary cross-entropy, SGD",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 5)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return Program(model, opt, keras_bce, X, y.float(), steps=300, batch_size=64,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
