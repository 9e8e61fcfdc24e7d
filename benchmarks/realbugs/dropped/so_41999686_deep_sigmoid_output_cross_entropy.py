"""Stack Overflow 41999686: a deep ReLU net for 4 classes with a sigmoid output into categorical cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/41999686 (via deepmufl, Dataset/all-bugs/41999686)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "283 inputs, five ReLU layers (N(0, 0.05) init), Dense(4, sigmoid), categorical CE, SGD 0.01 momentum 0.9",
    "fix": "softmax output: logits into CrossEntropyLoss",
}


def _normal_init(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)             # keras 'normal'
            nn.init.zeros_(m.bias)
    return model


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 283, classes=4, informative=4)
    sizes = [283, 50, 75, 100, 100, 100, 4]                 # the post's 100-150-200-200-200, halved
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(0.2)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    if not fixed:
        layers.append(nn.Sigmoid())
    model = _normal_init(nn.Sequential(*layers))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
