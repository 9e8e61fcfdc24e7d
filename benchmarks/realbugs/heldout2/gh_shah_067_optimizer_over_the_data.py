"""Shah et al.'s reproducibility set, bug 067 (a PyTorch Stack Overflow post): a two-dimensional linear
autoencoder whose optimizer is given the data tensor instead of the encoder and decoder weights, so the
weights receive gradients and never change."""
import numpy as np
import torch
from torch import nn

from realbugs._common import Program, _split, as_tensors, neg_mse_score

META = {
    "source": "https://github.com/mehilshah/Bug_Reproducibility_DL_Bugs (Bugs/067, a PyTorch Stack Overflow post)",
    "licence": "repository without a licence: nothing copied; own port from the bug description; post CC BY-SA",
    "labels": ["loop_api_misuse", "optimizer"],
    "expected": [{"code": "parameters_not_updated", "new": False}],
    "gate": "mse",
    "bug": "D = 2 correlated inputs, encoder Linear(2, 1), decoder Linear(1, 2), MSE reconstruction, "
           "optim.SGD(<the data>, lr 0.01): the optimizer steps the inputs, not the weights",
    "fix": "optim.SGD(model.parameters(), lr 0.01)",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    rng = np.random.default_rng(5000 + seed)
    x = rng.random((400, 2)).astype(np.float32)
    x[:, 0] = x[:, 0] + x[:, 1]
    x[:, 1] = 0.5 * x[:, 0] + x[:, 1]
    X, _, Xe, _ = as_tensors(*_split(x, x, seed, 0.25))
    model = nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 2))
    if fixed:
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        X.requires_grad_(True)                                  # the post hands the data to the optimizer
        opt = torch.optim.SGD([X], lr=0.01)
    return Program(model, opt, nn.MSELoss(), X, X, steps=300, batch_size=None,
                   score=neg_mse_score(Xe, Xe), seed=seed)
