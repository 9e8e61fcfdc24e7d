"""wenet-e2e/wekws pull request 73: the keyword-spotting executor stepped the optimizer without ever calling
``optimizer.zero_grad()``. Ported to a small 1-D CNN on MNIST-1D (sequences of 40 samples, 10 classes)."""
import torch
from torch import nn

import impediments as imp
from realbugs._common import Program, accuracy_score

META = {
    "source": "https://github.com/wenet-e2e/wekws/pull/73 (issue 72)",
    "licence": "wekws Apache-2.0; nothing copied, own port from the pull request's description",
    "labels": ["loop_api_misuse"],
    "expected": [{"code": "gradients_not_cleared", "new": False}],
    "gate": "accuracy",
    "bug": "training step: forward, loss, backward, optimizer.step() with no zero_grad (Adam)",
    "fix": "optimizer.zero_grad() before backward",
}


def _no_zero_grad(prog, xb, yb, step):
    loss = prog.loss_fn(prog.model(xb), yb)
    loss.backward()
    prog.optimizer.step()
    return loss


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    d = imp.load_dataset("mnist1d", standardize=True)
    X, y = d.X_train[:2000].unsqueeze(1), d.y_train[:2000]
    Xe, ye = d.X_test.unsqueeze(1), d.y_test
    model = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 16, 5, padding=2), nn.ReLU(),
                          nn.MaxPool1d(2), nn.Flatten(), nn.Linear(16 * 20, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=200, batch_size=64,
                   score=accuracy_score(Xe, ye), step_fn=None if fixed else _no_zero_grad, seed=seed)
