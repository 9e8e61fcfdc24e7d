"""Stack Overflow 68458462: four regression targets with values up to 4 fitted through sigmoid output units
(which cannot exceed 1), on the post's five literal rows."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/68458462 (via deepmufl, Dataset/all-bugs/68458462)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port; the five "
               "rows are the post's literal example arrays",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "mse",
    "bug": "5 rows x 5 inputs, Dense(2, relu), Dense(2, relu), Dense(4, sigmoid), MSE on targets in {0, 1, 3, 4}, "
           "Adam, batch 16 (here lr 0.01 for 300 full-batch steps in both versions: the post's 100 steps at 1e-3 "
           "move a bias by about 0.1)",
    "fix": "a linear output layer (no sigmoid): the targets lie outside (0, 1)",
}

_IN1 = [[2], [1], [4], [3], [5]]
_IN2 = [[2, 1, 8, 4], [2, 6, 1, 9], [7, 3, 1, 4], [3, 1, 6, 10], [3, 2, 7, 5]]
_OUT = [[3, 3, 1, 0], [3, 3, 3, 0], [3, 3, 4, 0], [3, 3, 1, 0], [3, 3, 4, 0]]


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([a + b for a, b in zip(_IN1, _IN2)], dtype=torch.float32)
    y = torch.tensor(_OUT, dtype=torch.float32)
    model = nn.Sequential(nn.Linear(5, 2), nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 4),
                          *([] if fixed else [nn.Sigmoid()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Program(model, opt, nn.MSELoss(), X, y, steps=300, batch_size=None,
                   score=neg_mse_score(X, y), seed=seed)   # the post has five rows: scored on them
