"""Stack Overflow 57397440: raw breast-cancer features (scales 0.001 to 4000) and softmax over one output unit."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, keras_bce, sklearn_table, standardize, threshold

META = {
    "source": "https://stackoverflow.com/questions/57397440 (via deepmufl, Dataset/all-bugs/57397440)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "preprocessing_inputs"],
    "expected": [{"code": "output_head_mismatch", "new": True}, {"code": "unequal_input_scales", "new": False}],
    "gate": "accuracy",
    "bug": "Dense(30, relu), BN, Dense(60, relu), BN, Dense(1, softmax) on the raw features, binary CE, Adam",
    "fix": "sigmoid output and standardized features",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("breast_cancer", seed)
    if fixed:
        X, Xe = standardize(X, Xe)
    model = nn.Sequential(nn.Linear(30, 30), nn.ReLU(), nn.BatchNorm1d(30), nn.Linear(30, 60), nn.ReLU(),
                          nn.BatchNorm1d(60), nn.Linear(60, 1), nn.Sigmoid() if fixed else nn.Softmax(dim=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y.float(), steps=78, batch_size=32,
                   score=accuracy_score(Xe, ye, threshold()), seed=seed)
