"""PyTorch forum thread 43814 ("Cross Entropy loss is not decreasing"): an MNIST MLP whose forward ends in a
softmax that is then fed to ``nn.CrossEntropyLoss``; the loss stays near ln 10 = 2.30."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits

META = {
    "source": "https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814 (reply 16 states the cause)",
    "licence": "forum post (no code licence): nothing copied; own port from the thread's description",
    "labels": ["activation", "loss"],
    "expected": [{"code": "softmax_before_loss", "new": False}],
    "gate": "accuracy",
    "bug": "MNIST (here digits, pixels / 16) MLP 64-128-64-10 with ReLU, softmax at the end of forward, "
           "CrossEntropyLoss, Adam, batch 64",
    "fix": "the thread's first solution: no softmax in forward, the scores go into CrossEntropyLoss as logits",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = X / 16.0, Xe / 16.0
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
                          *([] if fixed else [nn.Softmax(dim=1)]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=64,
                   score=accuracy_score(Xe, ye), seed=seed)
