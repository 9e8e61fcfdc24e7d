"""Shah et al.'s reproducibility set, bug 075 (a PyTorch Stack Overflow post): a Gaussian mixture whose component
means are rebuilt every step as a new tensor from ``means_coef.detach().item()``, so the one parameter in the
optimizer never receives a gradient and never moves."""
import numpy as np
import torch
from torch import distributions as D
from torch import nn

from realbugs._common import Program

META = {
    "source": "https://github.com/mehilshah/Bug_Reproducibility_DL_Bugs (Bugs/075, a PyTorch Stack Overflow post)",
    "licence": "repository without a licence: nothing copied; own port from the bug description; post CC BY-SA",
    "labels": ["loop_api_misuse"],
    "expected": [{"code": "parameters_without_gradient", "new": False}],
    "gate": "loss",
    "bug": "8-component 2-D Gaussian mixture, means = linspace(1, means_coef, 8) rebuilt each step with "
           "torch.tensor(... means_coef.detach().item() ..., requires_grad=True), the optimizer SGD(lr 1e-3, momentum 0.9) over "
           "[means_coef] only, minus the mean log-likelihood of N(0, I) samples",
    "fix": "means computed from means_coef itself (1 + (means_coef - 1) * linspace(0, 1, 8)), so the gradient "
           "reaches it; gate: minus the mean negative log-likelihood of held-back samples",
}


class _Mixture(nn.Module):
    """Returns each example's negative log-likelihood under the mixture."""

    def __init__(self, stdevs: torch.Tensor, fixed: bool):
        super().__init__()
        self.means_coef = nn.Parameter(torch.tensor(10.0))
        self.register_buffer("stdevs", stdevs)
        self.register_buffer("weights", torch.ones(8))
        self.fixed = fixed

    def forward(self, x):
        ramp = torch.linspace(0, 1, 8)
        if self.fixed:
            line = 1 + (self.means_coef - 1) * ramp
            means = torch.stack([line, line], dim=1)
        else:                       # the post: a fresh leaf (requires_grad=True) built from a Python float
            line = np.linspace(1, self.means_coef.detach().item(), 8)
            means = torch.tensor(np.stack([line, line], axis=1), dtype=torch.float32, requires_grad=True)
        gmm = D.MixtureSameFamily(D.Categorical(self.weights), D.Independent(D.Normal(means, self.stdevs), 1))
        return -gmm.log_prob(x)


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(6000 + seed)
    stdevs = torch.randn(8, 2, generator=gen).abs() + 0.1
    X, Xe = torch.randn(5000, 2, generator=gen), torch.randn(1000, 2, generator=gen)
    model = _Mixture(stdevs, fixed)
    opt = torch.optim.SGD([model.means_coef], lr=1e-3, momentum=0.9)
    return Program(model, opt, lambda nll, _: nll.mean(), X, torch.zeros(len(X)), steps=200, batch_size=None,
                   score=lambda m: -m(Xe).mean().item(), seed=seed)
