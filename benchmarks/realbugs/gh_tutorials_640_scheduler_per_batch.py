"""pytorch/tutorials pull request 640: the transfer-learning tutorial's ``StepLR(step_size=7, gamma=0.1)``, meant
to step once per epoch, stepped once per batch, so the learning rate falls 10x every 7 batches."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://github.com/pytorch/tutorials/pull/640 (\"scheduler.step() per epoch not per batch\")",
    "licence": "pytorch/tutorials BSD-3-Clause; nothing copied, own port from the pull request's description",
    "labels": ["learning_rate", "loop_api_misuse"],
    "expected": [{"code": "learning_rate_collapsed", "new": False}],
    "gate": "accuracy",
    "bug": "SGD lr 0.001 momentum 0.9 with StepLR(step_size=7, gamma=0.1), scheduler.step() after every batch",
    "fix": "scheduler.step() once per epoch",
}


def _stepper(fixed: bool, epoch_steps: int):
    def step_fn(prog, xb, yb, step):
        prog.optimizer.zero_grad(set_to_none=True)
        loss = prog.loss_fn(prog.model(xb), yb)
        loss.backward()
        prog.optimizer.step()
        if not fixed or (step + 1) % epoch_steps == 0:
            prog.scheduler.step()
        return loss
    return step_fn


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=120, batch_size=32,
                   score=accuracy_score(Xe, ye), step_fn=_stepper(fixed, epoch_steps=len(X) // 32), seed=seed,
                   scheduler=torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1))
