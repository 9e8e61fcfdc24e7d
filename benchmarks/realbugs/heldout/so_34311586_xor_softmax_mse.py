"""Stack Overflow 34311586: XOR with a softmax over the single output unit, MSE, SGD at lr 0.001."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, threshold

META = {
    "source": "https://stackoverflow.com/questions/34311586 (via deepmufl, Dataset/all-bugs/34311586)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "learning_rate"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "2-2-3-1 sigmoid net on XOR whose output is softmax over one unit (constant 1), MSE, SGD lr 0.001",
    "fix": "sigmoid output and a learning rate of 0.5 (softmax over one unit cannot move; lr 0.001 is too slow)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([[1., 1.], [0., 0.], [1., 0.], [0., 1.], [1., 1.], [0., 0.]])
    y = torch.tensor([[0.], [0.], [1.], [1.], [0.], [0.]])
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1),
                          nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.SGD(model.parameters(), lr=0.5 if fixed else 1e-3, momentum=0.9, nesterov=True)
    return Program(model, opt, nn.MSELoss(), X, y, steps=300, batch_size=None,
                   score=accuracy_score(X, y.long(), threshold()), seed=seed)
