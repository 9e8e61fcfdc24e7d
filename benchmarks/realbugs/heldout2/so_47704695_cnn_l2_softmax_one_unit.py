"""Stack Overflow 47704695: a deep L2-regularized CNN for two classes whose single output unit goes through a
softmax (the constant 1) under binary cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, standardize, threshold

META = {
    "source": "https://stackoverflow.com/questions/47704695 (via deepmufl, Dataset/all-bugs/47704695)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "relu Conv2D stack (16-32-32-64-64-..., l2(0.01) on every kernel, Dropout(0.5) after the early blocks), "
           "Flatten, Dropout(0.5), Dense(1, softmax), binary cross-entropy, Adam (here 4 convs on 8x8 digits 0 vs 1)",
    "fix": "a sigmoid on the output unit (softmax over one unit is the constant 1)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(0, 1))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    convs = [nn.Conv2d(1, 16, 5, padding=2), nn.Conv2d(16, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1),
             nn.Conv2d(32, 64, 3, padding=1)]
    model = nn.Sequential(convs[0], nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5), convs[1], nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.5), convs[2], nn.ReLU(), convs[3], nn.ReLU(), nn.Flatten(), nn.Dropout(0.5),
                          nn.Linear(64 * 2 * 2, 1), nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    bce = keras_bce

    def loss(out, target):                                      # Keras kernel_regularizer=l2(0.01) on each conv
        return bce(out, target) + 0.01 * sum((c.weight ** 2).sum() for c in convs)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y.float(), steps=120, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold(0.5)), seed=seed)
