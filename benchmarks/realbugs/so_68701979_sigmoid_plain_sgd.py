"""Stack Overflow 68701979: a sigmoid hidden layer and softmax output trained with plain SGD at lr 0.01."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/68701979 (via deepmufl, Dataset/all-bugs/68701979)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["optimizer", "learning_rate"],
    "expected": [{"code": "learning_rate_too_low", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(32, sigmoid), Dense(2, softmax), categorical cross-entropy, optimizer='sgd' (lr 0.01)",
    "fix": "Adam (lr 1e-2) for the same steps",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 2000, 5)
    model = nn.Sequential(nn.Linear(5, 32), nn.Sigmoid(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2) if fixed else torch.optim.SGD(model.parameters(), lr=0.01)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=60, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
