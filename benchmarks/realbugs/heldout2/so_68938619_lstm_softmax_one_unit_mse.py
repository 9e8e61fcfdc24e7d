"""Stack Overflow 68938619: an LSTM binary classifier whose single output unit goes through a softmax (the
constant 1), trained with MSE by RMSprop."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, threshold

META = {
    "source": "https://stackoverflow.com/questions/68938619 (via deepmufl, Dataset/all-bugs/68938619)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "make_classification rows scaled to unit norm, read as 10 steps of 1 feature, LSTM(80) (Keras's sigmoid "
           "activation / hard-sigmoid gates become torch's tanh LSTM), Dense(1, softmax), MSE, RMSprop, batch 32",
    "fix": "a sigmoid output unit with binary cross-entropy",
}


class _LSTMNet(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.lstm = nn.LSTM(1, 80, batch_first=True)
        self.out = nn.Linear(80, 1)
        self.head = nn.Sigmoid() if fixed else nn.Softmax(dim=1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(self.out(h[-1]))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 10, eval_fraction=0.1)
    X, Xe = (t / t.norm(dim=1, keepdim=True) for t in (X, Xe))      # sklearn normalize(): unit L2 rows
    X, Xe = X.reshape(-1, 10, 1), Xe.reshape(-1, 10, 1)
    crit = nn.BCELoss() if fixed else nn.MSELoss()
    model = _LSTMNet(fixed)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    return Program(model, opt, lambda out, t: crit(out.reshape(t.shape), t), X, y.float(), steps=280, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold(0.5)), seed=seed)
