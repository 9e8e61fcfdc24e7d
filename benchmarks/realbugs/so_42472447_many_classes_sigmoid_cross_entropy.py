"""Stack Overflow 42472447: 122 classes, a sigmoid output layer into categorical cross-entropy (Adam)."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/42472447 (via deepmufl, Dataset/all-bugs/42472447)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "33 inputs, 50-33-33-33 ReLU (uniform init), Dense(122, sigmoid), categorical cross-entropy, Adam",
    "fix": "softmax output for exclusive classes: logits into CrossEntropyLoss",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 3000, 33, classes=40, informative=20)   # 122 classes -> 40 at our size
    layers = [nn.Linear(33, 50), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(layers[-2].out_features, 33), nn.ReLU()]
    layers.append(nn.Linear(33, 40))
    if not fixed:
        layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=300, batch_size=20,
                   score=accuracy_score(Xe, ye), seed=seed)
