"""Stack Overflow 50914860: a three-class CNN whose output units are sigmoids trained with categorical
cross-entropy (the classes are exclusive: a softmax head is due)."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/50914860 (via deepmufl, Dataset/all-bugs/50914860)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}, {"code": "softmax_before_loss", "new": False}],
    "gate": "accuracy",
    "bug": "Conv2D(32) MaxPool Conv2D(32) MaxPool Flatten Dense(128, relu) Dense(3, sigmoid), categorical "
           "cross-entropy, Adam",
    "fix": "softmax output: the three class scores go into CrossEntropyLoss as logits",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(3, 5, 8))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4, 64), nn.ReLU(), nn.Linear(64, 3),
                          *([] if fixed else [nn.Sigmoid()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=60, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
