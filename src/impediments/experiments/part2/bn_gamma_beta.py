"""BatchNorm's learned γ and β move standardized values back into the non-linear region.

The module: after standardizing, BN outputs :math:`z = \\gamma \\hat{y} + \\beta`.
"If we are normalizing the pre-activation inputs, the standardized
:math:`\\hat{y}` may wind up in a linear region of the activation function,
resulting in a linear transformation; shifting may move the result to a
non-linear part of the activation function, resulting in a non-linear
transformation: more powerful." With :math:`\\gamma = 1, \\beta = 0` fixed the
sigmoid's inputs are standardized, so the fraction in sigmoid's linear region
:math:`|x| \\leq b` (:mod:`impediments.activations.regions`, :math:`b \\approx
0.80`) is about that of a standard normal, :math:`P(|Z| \\leq b) = \\mathrm{erf}(b /
\\sqrt{2})`. Here the same deep sigmoid MLP with BN before each sigmoid is
trained on digits twice, once with :math:`\\gamma` and :math:`\\beta` learned and once with them frozen at
1 and 0, and the sigmoid inputs' regions are counted on the test set
(inference mode) after training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization: where, and what it learns"
SOURCE = "seed: Batch Normalization (Details)"
MODES = ("learned", "fixed")


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    depth: int = 3
    width: int = 64
    steps: int = 400
    lr: float = 0.5
    momentum: float = 0.9
    batch_size: int = 64

    FULL = dict(steps=2000, width=128)


@dataclass
class Result:
    regions: dict                    # "learned"/"fixed" -> per hidden layer [saturated, linear, active] fractions
    gamma: dict                      # "learned"/"fixed" -> per BN layer: mean |γ|
    beta: dict                       # "learned"/"fixed" -> per BN layer: mean |β|
    test_acc: dict                   # "learned"/"fixed" -> final test accuracy
    linear_bound: float              # b: sigmoid's linear region is |x| <= b
    normal_linear: float             # P(|Z| <= b) for a standard normal Z


def bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def run(config: Config) -> Result:
    from impediments.activations.regions import classify, linear_intervals
    from impediments.data import load_dataset
    from impediments.experiments.part2.bn_placement import inputs_to
    from impediments.models import mlp
    from impediments.train import evaluate

    data = load_dataset("digits", seed=config.seed)
    regions, gamma, beta, acc = {}, {}, {}, {}
    for mode in MODES:
        model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width,
                       depth=config.depth, activation="sigmoid", norm="batch", norm_position="pre")
        if mode == "fixed":
            for bn in bn_layers(model):
                bn.weight.requires_grad_(False)
                bn.bias.requires_grad_(False)
        train(model, data, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
              momentum=config.momentum, seed=config.seed)
        regions[mode] = [classify(x, "sigmoid").tolist() for x in inputs_to(model, nn.Sigmoid, data.X_test)]
        gamma[mode] = [float(bn.weight.detach().abs().mean()) for bn in bn_layers(model)]
        beta[mode] = [float(bn.bias.detach().abs().mean()) for bn in bn_layers(model)]
        acc[mode] = evaluate(model, data.X_test, data.y_test)[1]
    (lo, hi), = linear_intervals("sigmoid")
    bound = min(-lo, hi)
    return Result(regions=regions, gamma=gamma, beta=beta, test_acc=acc, linear_bound=bound,
                  normal_linear=math.erf(bound / math.sqrt(2)))


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_gamma_beta

    return plot_bn_gamma_beta(result)


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values))


def claims(result: Result) -> list[Claim]:
    r = result
    linear = {m: _mean(x[1] for x in r.regions[m]) for m in MODES}
    saturated = {m: _mean(x[0] for x in r.regions[m]) for m in MODES}
    return [
        claim("With γ = 1 and β = 0 fixed, BN's outputs are standardized: the fraction of the sigmoid's inputs in "
              "its linear region is that of a standard normal, :math:`P(|Z| \\leq b)` (within 0.1: the test set "
              "is normalized by running statistics, not its own).", SOURCE,
              {"linear_fixed": linear["fixed"], "normal_linear": r.normal_linear},
              "abs(linear_fixed - normal_linear) < 0.1",
              labels={"linear_fixed": "fraction of sigmoid inputs in the linear region, γ/β fixed",
                      "normal_linear": f"P(|Z| ≤ {r.linear_bound:.2f}) for a standard normal (closed form)"}),
        claim("Learned γ and β move the standardized values out of the linear region into the non-linear one: "
              "fewer sigmoid inputs in the linear region than with γ/β fixed, and more in the saturated tails.",
              SOURCE,
              {"linear_learned": linear["learned"], "linear_fixed": linear["fixed"],
               "saturated_learned": saturated["learned"], "saturated_fixed": saturated["fixed"]},
              "linear_learned < linear_fixed and saturated_learned > saturated_fixed",
              labels={"linear_learned": "fraction in the linear region, γ/β learned",
                      "linear_fixed": "fraction in the linear region, γ/β fixed",
                      "saturated_learned": "fraction in a saturated tail, γ/β learned",
                      "saturated_fixed": "fraction in a saturated tail, γ/β fixed"}),
        claim("It is γ that does it: training grows the learned scale above 1 (mean |γ| over the BN layers).",
              SOURCE, {"gamma_learned": _mean(r.gamma["learned"]),
                       "beta_learned": _mean(r.beta["learned"])},
              "gamma_learned > 1",
              labels={"gamma_learned": "mean |γ| over units and BN layers, learned",
                      "beta_learned": "mean |β| over units and BN layers, learned"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = []
    for mode in MODES:
        for k, (s, lin, a) in enumerate(result.regions[mode]):
            rows.append([f"γ/β {mode}", k + 1, s, lin, a, result.gamma[mode][k], result.beta[mode][k]])
    return [Table("regions of the sigmoid's inputs per hidden layer (test set, after training)",
                  ["γ/β", "layer", "saturated", "linear", "active", "mean |γ|", "mean |β|"], rows),
            Table("final test accuracy (no claim: it goes either way at this scale)", ["γ/β learned", "γ/β fixed"],
                  [[result.test_acc["learned"], result.test_acc["fixed"]]])]
