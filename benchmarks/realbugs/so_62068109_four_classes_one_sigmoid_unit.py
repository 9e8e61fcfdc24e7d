"""Stack Overflow 62068109: four classes (labels 0..3) fitted by one sigmoid unit with binary cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, standardize

META = {
    "source": "https://stackoverflow.com/questions/62068109 (via deepmufl, Dataset/all-bugs/62068109)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "layers"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "a 3-conv CNN ending in Dense(1, sigmoid), binary cross-entropy, on 4-class integer labels",
    "fix": "Dense(4) logits into CrossEntropyLoss (softmax with categorical cross-entropy)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(0, 1, 2, 3))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    body = [nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(16 * 4, 64), nn.ReLU(), nn.Dropout(0.5)]
    if fixed:
        model, loss = nn.Sequential(*body, nn.Linear(64, 4)), nn.CrossEntropyLoss()
        decide = None
    else:
        model, loss = nn.Sequential(*body, nn.Linear(64, 1), nn.Sigmoid()), keras_bce
        decide = lambda out: (out[:, 0] > 0.5).long()         # the post reads the unit as a class
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y if fixed else y.float(), steps=100, batch_size=32,
                   score=accuracy_score(Xe, ye, decide), seed=seed)
