"""Stack Overflow 60874661: ten image classes (integer labels 0-9) fitted by one sigmoid unit with binary
cross-entropy, on raw pixel values."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/60874661 (via deepmufl, Dataset/all-bugs/60874661)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "preprocessing_inputs"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "CIFAR-10 raw pixels (0-255; here digits 0-16), Conv2D(32) Conv2D(32) Conv2D(64) with pooling, Dense(64, "
           "relu), Dropout(0.5), Dense(1, sigmoid), binary cross-entropy on labels 0-9, RMSprop, batch 16",
    "fix": "Dense(10) logits into CrossEntropyLoss on the labels, pixels scaled to [0, 1]",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) / (16.0 if fixed else 1.0) for t in (X, Xe))
    body = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4, 64),
            nn.ReLU(), nn.Dropout(0.5)]
    if fixed:
        model, loss, decide = nn.Sequential(*body, nn.Linear(64, 10)), nn.CrossEntropyLoss(), None
        target = y
    else:
        model, loss = nn.Sequential(*body, nn.Linear(64, 1), nn.Sigmoid()), keras_bce
        decide, target = threshold(0.5), y.float()                 # the post reads the unit as class 1 vs 0
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, target, steps=250, batch_size=16, score=accuracy_score(Xe, ye, decide),
                   seed=seed)
