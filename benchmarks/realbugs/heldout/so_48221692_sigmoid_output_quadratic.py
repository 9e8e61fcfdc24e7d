"""Stack Overflow 48221692: y = x**2 + 3 on [-10, 10] (targets 3 to 103) fitted through a sigmoid output unit."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/48221692 (via deepmufl, Dataset/all-bugs/48221692)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only; its dataset.csv is y = x**2 + 3, regenerated "
               "here); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_targets"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "unscaled_targets", "new": True}],
    "gate": "mse",
    "bug": "Dense(5, sigmoid), Dense(1, sigmoid), MSE, SGD (lr 0.01), full batch: the output cannot exceed 1",
    "fix": "linear output trained on standardized x and y (predictions mapped back to the original units); SGD lr "
           "0.01 -> 0.1 because the port trains 300 full-batch steps where the post trained 1000 epochs",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.arange(-10.0, 10.05, 0.1).unsqueeze(1)
    y = x ** 2 + 3
    order = torch.randperm(len(x), generator=gen)
    train, held = order[:150], order[150:]                 # train_test_split(test_size=0.25)
    X, Y, Xe, Ye = x[train], y[train], x[held], y[held]
    model = nn.Sequential(nn.Linear(1, 5), nn.Sigmoid(), nn.Linear(5, 1), *([] if fixed else [nn.Sigmoid()]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01 if not fixed else 0.1)
    if not fixed:
        return Program(model, opt, nn.MSELoss(), X, Y, steps=300, batch_size=None, score=neg_mse_score(Xe, Ye),
                       seed=seed)
    xm, xs, ym, ys = X.mean(), X.std(), Y.mean(), Y.std()
    score = neg_mse_score((Xe - xm) / xs, Ye, lambda out: out * ys + ym)
    return Program(model, opt, nn.MSELoss(), (X - xm) / xs, (Y - ym) / ys, steps=300, batch_size=None,
                   score=score, seed=seed)
