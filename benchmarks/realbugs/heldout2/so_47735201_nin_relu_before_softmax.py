"""Stack Overflow 47735201: a network-in-network CNN whose last 1x1 convolution (the class scores) has a ReLU
before the global average pooling and the softmax."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/47735201 (via deepmufl, Dataset/all-bugs/47735201)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "three mlpconv blocks (conv, 1x1 conv, 1x1 conv, all relu; max-pool and Dropout(0.5) between), the last "
           "1x1 conv gives 10 class maps through a relu, global average pooling, softmax, categorical CE, Adam",
    "fix": "no ReLU on the class maps: their global average goes into CrossEntropyLoss as logits",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 1), nn.ReLU(), nn.Conv2d(32, 32, 1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.5),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.5),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 32, 1), nn.ReLU(), nn.Conv2d(32, 10, 1),
        *([] if fixed else [nn.ReLU()]), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=200, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
