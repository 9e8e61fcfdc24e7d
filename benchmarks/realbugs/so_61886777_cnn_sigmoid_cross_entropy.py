"""Stack Overflow 61886777: a three-class CNN with Dense(3, sigmoid) into categorical cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/61886777 (via deepmufl, Dataset/all-bugs/61886777)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D(16), MaxPool, BN, Dropout, Dense(512, relu), Dense(3, sigmoid), categorical CE, Adam",
    "fix": "softmax output: logits into CrossEntropyLoss",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(1, 7, 9))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(16), nn.Dropout(0.2),
                          nn.Flatten(), nn.Linear(16 * 9, 128), nn.ReLU(), nn.Linear(128, 3),
                          *([] if fixed else [nn.Sigmoid()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=40, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
