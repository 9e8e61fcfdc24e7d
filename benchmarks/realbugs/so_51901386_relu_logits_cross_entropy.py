"""Stack Overflow 51901386: a VGG-style CNN whose class scores pass through a ReLU before categorical CE.

The PyTorch form of the mistake: ``CrossEntropyLoss`` on ``relu(logits)``; every class whose score is
negative is clamped to 0 and gets no gradient.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/51901386 (via deepmufl, Dataset/all-bugs/51901386)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "conv blocks, Dense(1024) + dropout, Dense(9, relu) into categorical cross-entropy, Adam 1e-4",
    "fix": "no activation on the class scores (softmax lives in the loss)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=tuple(range(9)))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * 16, 64), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(64, 9), *([] if fixed else [nn.ReLU()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=100, batch_size=24,
                   score=accuracy_score(Xe, ye), seed=seed)
