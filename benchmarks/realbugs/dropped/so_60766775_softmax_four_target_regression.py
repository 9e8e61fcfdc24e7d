"""Stack Overflow 60766775: four regression targets through a softmax head, SGD with batch size 1."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score, regression, standardize

META = {
    "source": "https://stackoverflow.com/questions/60766775 (via deepmufl, Dataset/all-bugs/60766775)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "unscaled_targets", "new": True}],
    "gate": "mse",
    "bug": "standardized inputs, sigmoid 32-20-15 with dropout, Dense(4, softmax), MSE on raw targets, SGD 0.01 m 0.87",
    "fix": "linear output on standardized targets",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = regression(seed, 1000, 8, targets=4)
    X, Xe = standardize(X, Xe)
    model = nn.Sequential(nn.Linear(8, 32), nn.Sigmoid(), nn.Dropout(0.1), nn.Linear(32, 20), nn.Sigmoid(),
                          nn.Dropout(0.1), nn.Linear(20, 15), nn.Sigmoid(), nn.Dropout(0.1), nn.Linear(15, 4),
                          *([] if fixed else [nn.Softmax(dim=1)]))
    mean, std = y.mean(0), y.std(0)
    unscale = (lambda out: out * std + mean) if fixed else None
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.87, nesterov=True)
    return Program(model, opt, nn.MSELoss(), X, (y - mean) / std if fixed else y, steps=300, batch_size=8,
                   score=neg_mse_score(Xe, ye, unscale), seed=seed)
