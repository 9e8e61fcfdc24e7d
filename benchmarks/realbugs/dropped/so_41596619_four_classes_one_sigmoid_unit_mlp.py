"""Stack Overflow 41596619: labels 0..3 fitted by one sigmoid unit with binary CE; argmax over one column."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, keras_bce

META = {
    "source": "https://stackoverflow.com/questions/41596619 (via deepmufl, Dataset/all-bugs/41596619)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "layers"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Dense(3, relu), Dense(1, sigmoid), binary CE on 4-class labels, SGD lr 0.001; predict by argmax(axis=-1)",
    "fix": "Dense(4) logits into CrossEntropyLoss (softmax with categorical cross-entropy)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([[0.5, 1, 1], [0.9, 1, 2], [0.8, 0, 1], [0.3, 1, 1], [0.6, 1, 2], [0.4, 0, 1], [0.9, 1, 7],
                      [0.5, 1, 4], [0.1, 0, 1], [0.6, 1, 0], [1, 0, 0]])
    y = torch.tensor([1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0])
    if fixed:
        model, loss, target = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 4)), nn.CrossEntropyLoss(), y
    else:
        model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1), nn.Sigmoid())
        loss, target = keras_bce, y.float()
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    return Program(model, opt, loss, X, target, steps=150, batch_size=None, score=accuracy_score(X, y), seed=seed)
