"""Stack Overflow 51749207: a Conv1D classifier over 600 samples ending in Dense(1, softmax), binary CE, Nadam."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/51749207 (via deepmufl, Dataset/all-bugs/51749207)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv1D(20, 4), MaxPool, Dropout, Flatten, Dense(50, relu), Dense(1, softmax), binary CE, Nadam, batch 8",
    "fix": "sigmoid on the single output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 549, 120, informative=10, eval_fraction=0.17)
    X, Xe = X.unsqueeze(1), Xe.unsqueeze(1)
    model = nn.Sequential(nn.Conv1d(1, 20, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2), nn.Dropout(0.3), nn.Flatten(),
                          nn.Linear(20 * 60, 50), nn.ReLU(), nn.Linear(50, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.NAdam(model.parameters(), lr=2e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=150, batch_size=8,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
