"""Stack Overflow 34673164: a two-class softmax classifier trained with mean squared error on one-hot targets."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, onehot

META = {
    "source": "https://stackoverflow.com/questions/34673164 (via deepmufl, Dataset/all-bugs/34673164)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(64, tanh), Dropout, Dense(64, tanh), Dropout, Dense(2, softmax), MSE, SGD 0.1 momentum 0.9",
    "fix": "categorical cross-entropy (logits into CrossEntropyLoss)",
}


def _uniform(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -0.05, 0.05)
            nn.init.zeros_(m.bias)
    return model


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 14)
    body = [nn.Linear(14, 64), nn.Tanh(), nn.Dropout(0.5), nn.Linear(64, 64), nn.Tanh(), nn.Dropout(0.5),
            nn.Linear(64, 2)]
    model = _uniform(nn.Sequential(*body, *([] if fixed else [nn.Softmax(dim=1)])))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    if fixed:
        return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=60, batch_size=16,
                       score=accuracy_score(Xe, ye), seed=seed)
    return Program(model, opt, nn.MSELoss(), X, onehot(y, 2), steps=60, batch_size=16,
                   score=accuracy_score(Xe, ye), seed=seed)
