"""PyTorch forum thread 96648 ("Neural network could not learn on this type of data, why?"): inputs 1..4000
and targets x**3 (up to 6.4e10) fed to an MLP unnormalized; the answer normalizes inputs and targets."""
import torch
from torch import nn

from realbugs._common import Program, neg_mse_score

META = {
    "source": "https://discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648",
    "licence": "forum post; nothing copied, own port from the thread's description",
    "labels": ["preprocessing_inputs", "preprocessing_targets"],
    "expected": [{"code": "unscaled_targets", "new": True}, {"code": "uncentered_inputs", "new": False}],
    "gate": "mse",
    "bug": "Linear(1, 50), ReLU, Linear(50, 1) on x in 1..4000 and y = x**3, MSE, Adam 1e-3, full batch",
    "fix": "standardize the input and the target; predictions are mapped back to the original units",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    x = torch.arange(1, 4000, 4, dtype=torch.float32).unsqueeze(1)
    y = x ** 3
    model = nn.Sequential(nn.Linear(1, 50), nn.ReLU(), nn.Linear(50, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if not fixed:
        return Program(model, opt, nn.MSELoss(), x, y, steps=300, batch_size=None,
                       score=lambda m: neg_mse_score(x, y)(m) / 1e18, seed=seed)
    xm, xs, ym, ys = x.mean(), x.std(), y.mean(), y.std()
    xn = (x - xm) / xs
    score = neg_mse_score(xn, y, lambda out: out * ys + ym)
    return Program(model, opt, nn.MSELoss(), xn, (y - ym) / ys, steps=300, batch_size=None,
                   score=lambda m: score(m) / 1e18, seed=seed)
