"""wkentaro/pytorch-fcn issue 57 / pull request 56: validation in the middle of an epoch calls ``model.eval()``
and training goes on in eval mode (dropout off, BatchNorm frozen on its running statistics) until the next
epoch starts. Ported with validation every 20 steps and a model.train() only at epoch starts."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://github.com/wkentaro/pytorch-fcn/issues/57 (fixed by pull request 56)",
    "licence": "pytorch-fcn MIT; nothing copied, own port from the issue's description",
    "labels": ["loop_api_misuse"],
    "expected": [{"code": "model_in_eval_mode", "new": False}],
    "gate": "accuracy",
    "bug": "validate() sets model.eval() mid-epoch; the training loop does not set model.train() again",
    "fix": "model.train() right after validation",
}


def _step_with_validation(fixed: bool, Xv: torch.Tensor, every: int = 20, epoch_steps: int = 100):
    def step_fn(prog, xb, yb, step):
        if step % epoch_steps == 0:
            prog.model.train()                               # train mode is set at the start of each epoch only
        if step % every == every - 1:
            prog.model.eval()
            with torch.no_grad():
                prog.model(Xv)                               # the validation pass
            if fixed:
                prog.model.train()
        prog.optimizer.zero_grad(set_to_none=True)
        loss = prog.loss_fn(prog.model(xb), yb)
        loss.backward()
        prog.optimizer.step()
        return loss
    return step_fn


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=200, batch_size=32,
                   score=accuracy_score(Xe, ye), step_fn=_step_with_validation(fixed, Xe[:64]), seed=seed)
