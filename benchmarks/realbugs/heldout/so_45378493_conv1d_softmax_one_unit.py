"""Stack Overflow 45378493: a Conv1D + BatchNorm classifier whose single output unit goes through softmax."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/45378493 (via deepmufl, Dataset/all-bugs/45378493)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "two Conv1D-BN-LeakyReLU-Dropout blocks, Dense(64), Dense(1) + softmax, binary cross-entropy, Adam",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 600, 40, eval_fraction=0.5)
    X, Xe = X.reshape(-1, 4, 10), Xe.reshape(-1, 4, 10)     # (10 steps, 4 channels), channels first
    model = nn.Sequential(
        nn.Conv1d(4, 16, 4, padding="same"), nn.BatchNorm1d(16), nn.LeakyReLU(), nn.Dropout(0.2),
        nn.Conv1d(16, 8, 4, padding="same"), nn.BatchNorm1d(8), nn.LeakyReLU(), nn.Dropout(0.2),
        nn.Flatten(), nn.Linear(80, 64), nn.BatchNorm1d(64), nn.LeakyReLU(), nn.Linear(64, 1),
        nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=100, batch_size=64,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
