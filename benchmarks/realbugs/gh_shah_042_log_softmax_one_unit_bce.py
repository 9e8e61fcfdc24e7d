"""Shah et al.'s reproducibility set, bug 042 (a PyTorch Stack Overflow post): ``log_softmax`` over the single
output unit of a binary classifier, fed to ``BCELoss``.

``log_softmax`` over one unit is exactly 0 for every input: BCELoss sees probability 0 everywhere.
"""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, threshold

META = {
    "source": "https://github.com/mehilshah/Bug_Reproducibility_DL_Bugs (Bugs/042, a PyTorch Stack Overflow post)",
    "licence": "repository without a licence: nothing copied; own port from the bug description; post CC BY-SA",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Linear(22, 10), ReLU, Linear(10, 1), log_softmax(dim=1), BCELoss, full-batch SGD lr 0.003",
    "fix": "sigmoid on the single output unit (BCELoss expects a probability); lr 0.003 -> 0.3 because the port "
           "trains 300 full-batch steps where the post trained 2000 epochs",
}


class Classifier(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.fc1, self.fc2, self.fixed = nn.Linear(22, 10), nn.Linear(10, 1), fixed

    def forward(self, x):
        z = self.fc2(torch.relu(self.fc1(x)))
        return torch.sigmoid(z) if self.fixed else torch.log_softmax(z, dim=1)


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 800, 22)
    model = Classifier(fixed)
    opt = torch.optim.SGD(model.parameters(), lr=0.3 if fixed else 0.003)
    return Program(model, opt, lambda out, t: nn.functional.binary_cross_entropy(out.reshape(t.shape), t), X,
                   y.float(), steps=300, batch_size=None, score=accuracy_score(Xe, ye, threshold()), seed=seed)
