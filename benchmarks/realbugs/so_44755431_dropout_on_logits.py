"""Stack Overflow 44755431: a CNN whose last Dense layer is followed by Dropout(0.5) and then softmax."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/44755431 (via deepmufl, Dataset/all-bugs/44755431)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["layers"],
    "expected": [{"code": "dropout_on_output", "new": True}],
    "gate": "accuracy",
    "bug": "MNIST CNN: Dense(10) -> Dropout(0.5) -> softmax, so half the logits are zeroed at every training step",
    "fix": "no dropout between the last Dense layer and the softmax",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    head = [nn.Linear(50, 10)] + ([] if fixed else [nn.Dropout(0.5)])
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 3 * 3, 50), nn.ReLU(), nn.Dropout(0.5),
                          *head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=100, batch_size=20,
                   score=accuracy_score(Xe, ye), seed=seed)
