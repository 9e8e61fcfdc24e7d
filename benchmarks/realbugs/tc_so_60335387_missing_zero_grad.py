"""TrainCheck's reproduction of Stack Overflow 60335387 ("PyTorch MNIST example not converge"): the CNN's
training loop never calls ``optimizer.zero_grad()``, so every step applies the sum of all past gradients."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/60335387 (reproduced in OrderLab/TrainCheck-Evaluation-Workloads, "
              "silent-issue-detection/bug-reprod-scripts/stackoverflow-60335387)",
    "licence": "TrainCheck workloads without a licence: nothing copied; own port from the README's description",
    "labels": ["loop_api_misuse"],
    "expected": [{"code": "gradients_not_cleared", "new": False}],
    "gate": "accuracy",
    "bug": "MNIST CNN, CrossEntropyLoss, Adam lr 1e-4 (here 1e-3 at our 8x8 scale), no optimizer.zero_grad()",
    "fix": "optimizer.zero_grad() before the forward pass",
}


def _no_zero_grad(prog, xb, yb, step):
    loss = prog.loss_fn(prog.model(xb), yb)
    loss.backward()
    prog.optimizer.step()
    return loss


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=64,
                   score=accuracy_score(Xe, ye), step_fn=None if fixed else _no_zero_grad, seed=seed)
