"""Stack Overflow 61997645: a stacked GRU classifying integer sequences (label: is the first number odd) with a
softmax over its single output unit, trained with MSE."""
import numpy as np
import torch
from torch import nn

from realbugs._common import Program, _split, accuracy_score, as_tensors, threshold

META = {
    "source": "https://stackoverflow.com/questions/61997645 (via deepmufl, Dataset/all-bugs/61997645)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "300 sequences of 5 integers 1-9, GRU(24) Dropout(0.5) GRU(12) Dropout(0.5) Dense(1, softmax), MSE, "
           "Adam (Keras's GRU(activation='relu') becomes torch's tanh GRU: torch has no ReLU GRU)",
    "fix": "a sigmoid output unit with binary cross-entropy",
}


class _GRUNet(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.gru1 = nn.GRU(1, 24, batch_first=True)
        self.gru2 = nn.GRU(24, 12, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(12, 1)
        self.head = nn.Sigmoid() if fixed else nn.Softmax(dim=1)

    def forward(self, x):
        h, _ = self.gru1(x)
        h, _ = self.gru2(self.drop(h))
        return self.head(self.out(self.drop(h[:, -1])))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    rng = np.random.default_rng(2000 + seed)
    seqs = rng.integers(1, 10, size=(300, 5)).astype(np.float32)
    labels = (seqs[:, 0] % 2 == 1).astype(np.float32)
    X, y, Xe, ye = as_tensors(*_split(seqs.reshape(300, 5, 1), labels, seed, 0.3))
    loss = nn.BCELoss() if fixed else nn.MSELoss()
    model = _GRUNet(fixed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, lambda out, t: loss(out.reshape(t.shape), t), X, y, steps=300, batch_size=32,
                   score=accuracy_score(Xe, ye.long(), threshold(0.5)), seed=seed)
