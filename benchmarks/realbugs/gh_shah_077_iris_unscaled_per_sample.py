"""Shah et al.'s reproducibility set, bug 077 (a PyTorch Stack Overflow post): a 4-3-3 iris classifier
trained one example at a time on raw features (the StandardScaler lines are commented out)."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, sklearn_table, standardize

META = {
    "source": "https://github.com/mehilshah/Bug_Reproducibility_DL_Bugs (Bugs/077, a PyTorch Stack Overflow post)",
    "licence": "repository without a licence: nothing copied; own port from the bug description; post CC BY-SA",
    "labels": ["preprocessing_inputs"],
    "expected": [{"code": "uncentered_inputs", "new": False}, {"code": "unequal_input_scales", "new": False}],
    "gate": "accuracy",
    "bug": "Linear(4, 3), ReLU, Linear(3, 3), CrossEntropyLoss, SGD lr 0.1, batch 1, raw iris features",
    "fix": "standardize the features (the commented-out StandardScaler)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("iris", seed, eval_fraction=0.4)
    if fixed:
        X, Xe = standardize(X, Xe)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=270, batch_size=1,
                   score=accuracy_score(Xe, ye), seed=seed)
