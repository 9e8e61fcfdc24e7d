"""Stack Overflow 41823068: five exclusive classes, a sigmoid output layer, categorical cross-entropy.

In PyTorch the same mistake is ``CrossEntropyLoss`` applied to ``sigmoid(logits)``: probabilities in (0, 1)
reach a loss that applies its own log-softmax, so the logits it sees span at most 1 and the gradient is weak.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/41823068 (via deepmufl, Dataset/all-bugs/41823068)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(5, sigmoid) into categorical cross-entropy for 5 exclusive classes (RMSprop)",
    "fix": "logits straight into CrossEntropyLoss (softmax output) for exclusive classes",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 10, classes=5, informative=5)
    body = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 5))
    model = body if fixed else nn.Sequential(body, nn.Sigmoid())
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
