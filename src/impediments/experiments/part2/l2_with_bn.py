r"""L2 regularization with BatchNorm changes the effective learning rate, not the function (van Laarhoven 2017).

The module: "L2 regularization (weight decay) has *no* regularizing effect
when used with Batch Normalization! ... L2 regularization affects scale of
weights, and thereby learning rate". A weight vector w that feeds a
BatchNorm is scale-invariant: :math:`f(\alpha w) = f(w)`, so
:math:`L_\lambda(\alpha w) = L_{\lambda\alpha^2}(w)`, the gradient scales as
:math:`\nabla L(\alpha w) = \nabla L(w)/\alpha`, and an SGD step changes the
direction of w by about :math:`\eta/\lVert w\rVert^2` (the effective learning
rate). Weight decay shrinks :math:`\lVert w\rVert` and so raises the effective learning rate.

Four measurements on a ReLU MLP with BN on digits (weight decay only on the
Linear layers that feed a BN):

1. outputs and gradients after scaling those weights by :math:`\alpha`;
2. training from :math:`(\alpha w, \alpha^2 \eta)` (weights, learning rate) follows the same trajectory as
   from :math:`(w, \eta)`: the effective learning rate is :math:`\eta/\lVert w\rVert^2`;
3. :math:`\lVert w\rVert` and :math:`\eta/\lVert w\rVert^2` over training for :math:`\lambda \in \{0, 5 \cdot 10^{-4}, 5 \cdot 10^{-3}\}`;
4. test accuracy for each :math:`\lambda`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization and L2 regularization"
SOURCE = "van Laarhoven 2017"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 3
    lr: float = 0.1
    batch_size: int = 50
    epochs: int = 15
    decays: tuple[float, ...] = (0.0, 5e-4, 5e-3)
    alphas: tuple[float, ...] = (0.1, 10.0, 100.0)
    alpha_train: float = 2.0         # the (α w, α² η) run
    record_every: int = 10

    FULL = dict(width=128, epochs=40, decays=(0.0, 5e-4, 5e-3, 5e-2))


@dataclass
class Result:
    alphas: list
    output_rel_diff: list            # max |f(αw) − f(w)| / max |f(w)| per α (training mode)
    grad_ratio: list                 # ‖∇L(αw)‖ / ‖∇L(w)‖ per α (expected 1/α)
    output_rel_diff_fixed_eps: list  # the same two with BN's ε left at its default (not scaled by α²)
    grad_ratio_fixed_eps: list
    alpha_train: float
    trajectory_weight_err: float     # max relative error of w_scaled/α vs w at the end
    trajectory_agreement: float      # fraction of equal test predictions of the two runs
    decays: list
    steps: list                      # steps at which norms were recorded
    norms: dict                      # str(λ) -> [mean over BN-fed layers of ‖w‖ per record]
    effective_lr: dict               # str(λ) -> [mean over layers of η/‖w‖² per record]
    test_acc: dict                   # str(λ) -> final test accuracy
    lr: float


def bn_fed(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers whose output goes straight into a BatchNorm (hidden{k}.linear)."""
    return [block.linear for name, block in model.named_children() if name.startswith("hidden")]


def build(config: Config, data) -> nn.Module:
    from impediments.models import mlp

    return seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                  activation="relu", norm="batch")


def scale_bn_fed(model: nn.Module, alpha: float, *, scale_eps: bool) -> nn.Module:
    """A copy with the BN-fed weights and biases times α.

    BatchNorm divides by sqrt(Var + ε), so the invariance is exact only
    when ε scales too: BN(α y; α² ε) = BN(y; ε). ``scale_eps`` does that.
    """
    from impediments.norm import is_batch_norm

    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for lin in bn_fed(scaled):
            lin.weight.mul_(alpha)
            lin.bias.mul_(alpha)
    if scale_eps:
        for m in scaled.modules():
            if is_batch_norm(m):
                m.eps *= alpha ** 2
    return scaled


def scale_checks(model: nn.Module, X, y, alphas, *, scale_eps: bool) -> tuple[list, list]:
    """Training-mode outputs and gradient norms of the BN-fed weights after scaling them by each α."""
    def out_and_grad(m):
        m.train()
        out = m(X)
        grads = torch.autograd.grad(nn.functional.cross_entropy(out, y), [lin.weight for lin in bn_fed(m)])
        return out.detach(), torch.sqrt(sum((g ** 2).sum() for g in grads))

    base_out, base_grad = out_and_grad(copy.deepcopy(model))
    diffs, ratios = [], []
    for alpha in alphas:
        out, grad = out_and_grad(scale_bn_fed(model, alpha, scale_eps=scale_eps))
        diffs.append(float((out - base_out).abs().max() / base_out.abs().max()))
        ratios.append(float(grad / base_grad))
    return diffs, ratios


class NormProbe:
    """Training callback: mean ‖w‖ of the BN-fed weights every ``every`` steps."""

    def __init__(self, model, every: int) -> None:
        self.layers, self.every, self.steps, self.norms = bn_fed(model), every, [], []

    def record(self, step: int) -> None:
        self.steps.append(step)
        self.norms.append([float(lin.weight.detach().norm()) for lin in self.layers])

    def on_step_end(self, step, loss) -> None:
        if step % self.every == 0:
            self.record(step)


def optimizer(model: nn.Module, lr: float, decay: float, bn_fed_lr: float | None = None) -> torch.optim.SGD:
    """SGD with weight decay ``decay`` (and learning rate ``bn_fed_lr``) on the BN-fed weights only."""
    fed = {id(p) for lin in bn_fed(model) for p in lin.parameters()}
    rest = [p for p in model.parameters() if id(p) not in fed]
    fed_params = [p for lin in bn_fed(model) for p in lin.parameters()]
    return torch.optim.SGD([{"params": fed_params, "weight_decay": decay, "lr": bn_fed_lr or lr},
                            {"params": rest, "weight_decay": 0.0}], lr=lr)


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.train import evaluate

    data = load_dataset("digits", seed=config.seed)
    model = build(config, data)
    X, y = data.X_train[:200], data.y_train[:200]
    diffs, ratios = scale_checks(model, X, y, config.alphas, scale_eps=True)
    diffs_eps, ratios_eps = scale_checks(model, X, y, config.alphas, scale_eps=False)
    # (α w, α² η) vs (w, η): same directions all along
    a = config.alpha_train
    one, two = copy.deepcopy(model), scale_bn_fed(model, a, scale_eps=True)
    kwargs = dict(seed=config.seed, epochs=config.epochs, batch_size=config.batch_size)
    train(one, data, optimizer=optimizer(one, config.lr, 0.0), **kwargs)
    train(two, data, optimizer=optimizer(two, config.lr, 0.0, a * a * config.lr), **kwargs)
    errs = [float((l2.weight.detach() / a - l1.weight.detach()).norm() / l1.weight.detach().norm())
            for l1, l2 in zip(bn_fed(one), bn_fed(two))]
    with torch.no_grad():
        agree = float((one.eval()(data.X_test).argmax(1) == two.eval()(data.X_test).argmax(1)).float().mean())
    norms, eff, acc = {}, {}, {}
    for decay in config.decays:
        m = build(config, data)
        probe = NormProbe(m, config.record_every)
        probe.record(0)
        train(m, data, optimizer=optimizer(m, config.lr, decay), callbacks=[probe], **kwargs)
        n = np.asarray(probe.norms)
        norms[str(decay)] = n.mean(axis=1).tolist()
        eff[str(decay)] = (config.lr / n ** 2).mean(axis=1).tolist()
        acc[str(decay)] = evaluate(m, data.X_test, data.y_test)[1]
    return Result(alphas=list(config.alphas), output_rel_diff=diffs, grad_ratio=ratios,
                  output_rel_diff_fixed_eps=diffs_eps, grad_ratio_fixed_eps=ratios_eps, alpha_train=a,
                  trajectory_weight_err=max(errs), trajectory_agreement=agree, decays=list(config.decays),
                  steps=probe.steps, norms=norms, effective_lr=eff, test_acc=acc, lr=config.lr)


def plot(result: Result):
    from impediments.plots.part2 import plot_l2_with_bn

    return plot_l2_with_bn(result)


def claims(result: Result) -> list[Claim]:
    alphas = np.asarray(result.alphas)
    keys = [str(d) for d in result.decays]
    final_norm = [result.norms[k][-1] for k in keys]
    final_eff = [result.effective_lr[k][-1] for k in keys]
    accs = {f"acc_lambda{i}": result.test_acc[k] for i, k in enumerate(keys)}
    lam = {f"acc_lambda{i}": f"test accuracy, λ = {d:g}" for i, d in enumerate(result.decays)}
    return [
        claim("Scaling the weights that feed a BatchNorm by α leaves the function unchanged (training mode), so "
              ":math:`L_\\lambda(\\alpha w) = L_{\\lambda\\alpha^2}(w)`: L2 cannot regularize what the network expresses. Exact when BN's ε scales "
              "by α² too (the bound is float32 rounding); with torch's fixed ε = 1e-5 the outputs differ slightly "
              "(reported).", SOURCE,
              {"max_rel_output_diff": max(result.output_rel_diff),
               "max_rel_output_diff_fixed_eps": max(result.output_rel_diff_fixed_eps),
               "min_alpha": float(alphas.min()), "max_alpha": float(alphas.max())},
              "max_rel_output_diff <= 1e-4",
              paper="an exact identity (van Laarhoven 2017): relative change 0, here up to float32 rounding",
              labels={"max_rel_output_diff": "largest relative output change, ε scaled with α²",
                      "max_rel_output_diff_fixed_eps": "largest relative output change, fixed ε",
                      "min_alpha": "smallest α", "max_alpha": "largest α"}),
        claim("The gradient scales as :math:`1/\\alpha` (exact with ε scaled; fixed-ε error reported).", SOURCE,
              {"max_rel_err_grad_ratio": float(np.max(np.abs(np.asarray(result.grad_ratio) * alphas - 1))),
               "fixed_eps_rel_err": float(np.max(np.abs(np.asarray(result.grad_ratio_fixed_eps) * alphas - 1)))},
              "max_rel_err_grad_ratio <= 1e-4",
              paper="exactly 1/α (van Laarhoven 2017): gradient ratio · α = 1",
              labels={"max_rel_err_grad_ratio": "largest |gradient ratio · α - 1|, ε scaled",
                      "fixed_eps_rel_err": "largest |gradient ratio · α - 1|, fixed ε"}),
        claim("The effective learning rate is :math:`\\eta/\\lVert w\\rVert^2`: training from "
              ":math:`(\\alpha w, \\alpha^2 \\eta)` with "
              f"α = {result.alpha_train:g} "
              "follows the same trajectory as :math:`(w, \\eta)`, up to float rounding.", SOURCE,
              {"max_rel_weight_err": result.trajectory_weight_err,
               "test_prediction_agreement": result.trajectory_agreement},
              "max_rel_weight_err <= 0.01 and test_prediction_agreement >= 0.99",
              paper="η/‖w‖² (van Laarhoven 2017, for SGD): the same trajectory exactly, here up to float rounding",
              labels={"max_rel_weight_err": "largest relative weight difference after training",
                      "test_prediction_agreement": "fraction of identical test predictions"}),
        claim("Weight decay shrinks :math:`\\lVert w\\rVert` of BN-fed layers and thereby raises the effective "
              "learning rate: the final :math:`\\lVert w\\rVert` decreases and :math:`\\eta/\\lVert w\\rVert^2` "
              "increases with :math:`\\lambda` (every step of the λ grid).",
              "seed: Batch Normalization",
              {"min_norm_decrease": min(a - b for a, b in zip(final_norm, final_norm[1:])),
               "min_eff_lr_increase": min(b - a for a, b in zip(final_eff, final_eff[1:])),
               **{f"norm_lambda{i}": v for i, v in enumerate(final_norm)},
               **{f"eff_lr_lambda{i}": v for i, v in enumerate(final_eff)}},
              "min_norm_decrease > 0 and min_eff_lr_increase > 0",
              labels={"min_norm_decrease": "smallest drop of final ‖w‖ from one λ to the next",
                      "min_eff_lr_increase": "smallest rise of final η/‖w‖² from one λ to the next",
                      **{f"norm_lambda{i}": f"final ‖w‖, λ = {d:g}" for i, d in enumerate(result.decays)},
                      **{f"eff_lr_lambda{i}": f"final η/‖w‖², λ = {d:g}" for i, d in enumerate(result.decays)}}),
        claim("What the network can express does not change with λ: test accuracies of all λ lie within 0.03 "
              "(13 of 450 test digits) of each other.", "seed: Batch Normalization", accs,
              f"max({', '.join(accs)}) - min({', '.join(accs)}) <= 0.03", labels=lam),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[d, result.norms[str(d)][0], result.norms[str(d)][-1], result.effective_lr[str(d)][-1],
             result.test_acc[str(d)]] for d in result.decays]
    return [Table("weight decay on the BN-fed Linear weights (SGD)",
                  ["λ", "‖w‖ at start", "‖w‖ at end", "η/‖w‖² at end", "test acc"], rows)]
