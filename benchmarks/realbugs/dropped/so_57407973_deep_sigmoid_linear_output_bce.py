"""Stack Overflow 57407973: a deep sigmoid net whose Dense(1) output is linear, trained with binary CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification, keras_bce, threshold

META = {
    "source": "https://stackoverflow.com/questions/57407973 (via deepmufl, Dataset/all-bugs/57407973)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "sigmoid 28-200-300-300-150 with dropout (N(0, 0.05) init), Dense(1) linear, binary CE, Adam",
    "fix": "sigmoid on the output unit",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 28)
    model = nn.Sequential(nn.Linear(28, 28), nn.Sigmoid(), nn.Linear(28, 50), nn.Sigmoid(), nn.Dropout(0.5),
                          nn.Linear(50, 75), nn.Sigmoid(), nn.Dropout(0.5), nn.Linear(75, 75), nn.Sigmoid(),
                          nn.Dropout(0.5), nn.Linear(75, 38), nn.Sigmoid(), nn.Dropout(0.4), nn.Linear(38, 1),
                          *([nn.Sigmoid()] if fixed else []))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)
            nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=250, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
