"""Stack Overflow 50338865: XOR as a two-class problem for stacked LSTMs, Dense(2) linear, mean absolute error."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, onehot

META = {
    "source": "https://stackoverflow.com/questions/50338865 (via deepmufl, Dataset/all-bugs/50338865)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "LSTM(10, return_sequences) LSTM(10) Dense(2) linear, loss='mae' on one-hot XOR targets, Adam, 50 epochs",
    "fix": "softmax output with categorical cross-entropy (logits into CrossEntropyLoss)",
}


class LSTMXor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 10, num_layers=2, batch_first=True)
        self.out = nn.Linear(10, 2)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.out(h[:, -1])


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([[[0., 0.]], [[0., 1.]], [[1., 0.]], [[1., 1.]]])
    y = torch.tensor([0, 1, 1, 0])
    model = LSTMXor()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    if fixed:
        return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=None,
                       score=accuracy_score(X, y), seed=seed)
    return Program(model, opt, nn.L1Loss(), X, onehot(y, 2), steps=150, batch_size=None,
                   score=accuracy_score(X, y), seed=seed)
