"""Stack Overflow 51930566: iris with the scaled features computed but the raw ones trained on, and a sigmoid
output layer into categorical cross-entropy."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, sklearn_table, standardize

META = {
    "source": "https://stackoverflow.com/questions/51930566 (via deepmufl, Dataset/all-bugs/51930566)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["preprocessing_inputs", "activation"],
    "expected": [{"code": "uncentered_inputs", "new": False}, {"code": "unequal_input_scales", "new": False},
                 {"code": "softmax_before_loss", "new": False}, {"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "X_scaled = StandardScaler().fit_transform(X) but train_test_split(X, ...); Dense(4, relu), Dense(3, sigmoid), CCE",
    "fix": "train on the standardized features, softmax output (logits into CrossEntropyLoss)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("iris", seed, eval_fraction=0.5)
    if fixed:
        X, Xe = standardize(X, Xe)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3), *([] if fixed else [nn.Sigmoid()]))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)             # keras 'normal'
            nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=300, batch_size=5,
                   score=accuracy_score(Xe, ye), seed=seed)
