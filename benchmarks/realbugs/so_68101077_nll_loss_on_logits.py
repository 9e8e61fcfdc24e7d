"""Stack Overflow 68101077: a probability loss on raw logits (Keras: sparse CCE without from_logits=True).

The PyTorch form of the mistake is ``NLLLoss`` on logits, without ``log_softmax``: the loss is minus the
true class's raw score, unbounded below, so it is pushed to minus infinity instead of to a distribution.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits

META = {
    "source": "https://stackoverflow.com/questions/68101077 (via deepmufl, Dataset/all-bugs/68101077)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Flatten, Dense(128, relu), Dense(10) logits, a loss that expects (log-)probabilities, Adam",
    "fix": "CrossEntropyLoss on the logits (from_logits=True)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = X / 16, Xe / 16
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss() if fixed else nn.NLLLoss(), X, y, steps=300, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
