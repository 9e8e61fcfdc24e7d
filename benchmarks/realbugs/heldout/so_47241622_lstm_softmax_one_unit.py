"""Stack Overflow 47241622: a stateful LSTM classifier with softmax over its single output unit."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold


META = {
    "source": "https://stackoverflow.com/questions/47241622 (via deepmufl, Dataset/all-bugs/47241622)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "LSTM(128) over a length-128 sequence, Dense(1, softmax), binary cross-entropy, Adam",
    "fix": "sigmoid on the single output unit",
}


class LSTMClassifier(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.lstm = nn.LSTM(1, 16, batch_first=True)
        self.out = nn.Linear(16, 1)
        self.head = nn.Sigmoid() if fixed else nn.Softmax(dim=1)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.head(self.out(h[:, -1]))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 16)
    X, Xe = X.unsqueeze(-1), Xe.unsqueeze(-1)
    model = LSTMClassifier(fixed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Program(model, opt, keras_bce, X, y.float(), steps=80, batch_size=50,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
