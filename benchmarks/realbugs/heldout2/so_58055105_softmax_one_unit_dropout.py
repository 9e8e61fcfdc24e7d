"""Stack Overflow 58055105: a binary classifier whose single output unit goes through a softmax (always 1.0)."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/58055105 (via deepmufl, Dataset/all-bugs/58055105)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "22 inputs, Dense(48, relu), Dropout(0.5), Dense(1, softmax), binary cross-entropy, Adam lr 1e-4, batch 5, "
           "20 epochs (about 2,700 steps; here 300 steps at lr 1e-3 in both versions: the first port kept lr 1e-4 and "
           "its fixed version had not trained within 300 steps, HELDOUT2.md)",
    "fix": "a sigmoid on the output unit (softmax over one unit is the constant 1)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 22, eval_fraction=0.33)
    head = nn.Sigmoid() if fixed else nn.Softmax(dim=1)
    model = nn.Sequential(nn.Linear(22, 48), nn.ReLU(), nn.Dropout(0.5), nn.Linear(48, 1), head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=300, batch_size=5,
                   score=accuracy_score(Xe, ye, threshold(0.5)), seed=seed)
