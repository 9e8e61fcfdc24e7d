"""Stack Overflow 44758894: a binary classifier with a ReLU output unit trained with MSE under plain SGD."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/44758894 (via deepmufl, Dataset/all-bugs/44758894)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "7 inputs, Dense(16) ReLU ReLU, Dense(1) ReLU, MSE, SGD lr 0.01: a ReLU output for a 0/1 target",
    "fix": "sigmoid output with binary cross-entropy (the usual remedy for a two-class problem)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 7)
    model = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.ReLU(), nn.Linear(16, 1),
                          nn.Sigmoid() if fixed else nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = keras_bce if fixed else (lambda out, t: nn.functional.mse_loss(out.reshape(t.shape), t))
    return Program(model, opt, loss, X, y.float(), steps=120, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
