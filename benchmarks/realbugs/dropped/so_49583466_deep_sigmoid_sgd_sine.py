"""Stack Overflow 49583466: a three-layer sigmoid net fitting sin(x) with plain SGD stays at the mean."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://stackoverflow.com/questions/49583466 (via deepmufl, Dataset/all-bugs/49583466)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["optimizer", "learning_rate", "epochs"],
    "expected": [{"code": "vanishing_gradients", "new": False}, {"code": "learning_rate_too_low", "new": True}],
    "gate": "mse",
    "bug": "1-20-20-20-1 sigmoid net (uniform +-0.05 init), MSE, SGD lr 0.01 for 2 epochs on min-max scaled sin(x)",
    "fix": "Adam at lr 0.01 for the same steps (SGD at 0.01 barely moves this net in 2 epochs)",
}


def _uniform(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -0.05, 0.05)         # keras 'uniform'
            nn.init.zeros_(m.bias)
    return model


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.sort(torch.rand(2000, generator=gen) * 20 - 10).values.unsqueeze(1)
    y = torch.sin(x)
    X, Y = (x + 10) / 20, (y + 1) / 2                       # MinMaxScaler on both
    model = _uniform(nn.Sequential(nn.Linear(1, 20), nn.Sigmoid(), nn.Linear(20, 20), nn.Sigmoid(),
                                   nn.Linear(20, 20), nn.Sigmoid(), nn.Linear(20, 1)))
    opt = torch.optim.Adam(model.parameters(), lr=0.01) if fixed else torch.optim.SGD(model.parameters(), lr=0.01)
    return Program(model, opt, nn.MSELoss(), X, Y, steps=250, batch_size=32, score=neg_mse_score(X, Y), seed=seed)
