"""Why BatchNorm allows higher learning rates: it controls the size of the derivatives.

The module: "the weights are updated by the product of the learning rate and
the derivatives; by controlling the size of the derivatives we can use a
larger learning rate without increasing the size of the update." Ioffe &
Szegedy 2015 (section 3.3) give the mechanism: BN's output does not change
when a layer's weights are scaled, :math:`\\mathrm{BN}((aW)u) = \\mathrm{BN}(Wu)`,
so

.. math:: \\frac{\\partial \\mathrm{BN}((aW)u)}{\\partial (aW)} = \\frac{1}{a} \\frac{\\partial \\mathrm{BN}(Wu)}{\\partial W}:

larger weights get smaller gradients, and a large rate that grows the weights
shrinks its own later steps. Checked twice: the closed form on one batch
(scale one layer's weights by :math:`a` and compare its gradient), and during
training of the same deep ReLU MLP on digits, with and without BN, by plain SGD
at the same large rate, recording the gradient norm and the weight norm of a
middle layer at every step.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded

SECTION = "Batch Normalization"
SOURCE = "seed: Batch Normalization (Conclusion)"
PAPER = "Ioffe & Szegedy 2015, section 3.3"
NETWORKS = ("plain", "bn")


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    depth: int = 4
    width: int = 64
    lr: float = 1.0                  # large: the rate bn_learning_rates finds BN still trains at and plain does not
    steps: int = 300
    batch_size: int = 32
    scale: float = 10.0              # a, for the closed-form check
    layer: str = "hidden2"           # the middle layer whose norms are recorded

    FULL = dict(steps=1500, width=128)


@dataclass
class Result:
    scaled_gradient_ratio: float     # |grad W| / |grad (aW)| of the scaled layer (closed form: a)
    other_gradient_ratio: float      # the same ratio for the other layers, largest deviation from 1 (closed form: 1)
    scale: float
    grad_norm: dict                  # "plain"/"bn" -> gradient norm of the layer's weight at every step
    weight_norm: dict                # "plain"/"bn" -> its weight norm at every step (before the update)
    diverged: dict                   # "plain"/"bn" -> 1 if the loss became non-finite (the mean: share of seeds)
    lr: float


def layer_gradients(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The gradient norm of each hidden Linear weight on one batch (training mode)."""
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model.train()(X), y).backward()
    return {name: float(m.linear.weight.grad.norm()) for name, m in model.named_children() if hasattr(m, "linear")}


def scale_invariance(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str, a: float) -> tuple[float, float]:
    """(ratio of the scaled layer's gradient norms before/after scaling its weights by ``a``, largest |ratio − 1|
    over the other layers)."""
    before = layer_gradients(model, X, y)
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.get_submodule(layer).linear.weight.mul_(a)
    after = layer_gradients(scaled, X, y)
    others = max(abs(before[k] / after[k] - 1) for k in before if k != layer)
    return before[layer] / after[layer], others


def trajectory(model: nn.Module, data, config: Config) -> tuple[list[float], list[float], bool]:
    """Plain SGD at ``config.lr``: the layer's gradient and weight norms at every step, and whether it diverged."""
    from impediments.data.batching import infinite_batches

    torch.manual_seed(config.seed)
    weight = model.get_submodule(config.layer).linear.weight
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    batches = infinite_batches(data.X_train, data.y_train, config.batch_size, seed=config.seed)
    grads, norms = [], []
    for _ in range(config.steps):
        xb, yb = next(batches)
        loss = nn.functional.cross_entropy(model(xb), yb)
        if not math.isfinite(float(loss.detach())):
            return grads, norms, True
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads.append(float(weight.grad.norm()))
        norms.append(float(weight.detach().norm()))
        opt.step()
    return grads, norms, False


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)

    def build(norm):
        return seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                      activation="relu", norm=norm)

    ratio, others = scale_invariance(build("batch"), data.X_train[:config.batch_size],
                                     data.y_train[:config.batch_size], config.layer, config.scale)
    grads, norms, diverged = {}, {}, {}
    for key, norm in (("plain", None), ("bn", "batch")):
        grads[key], norms[key], stopped = trajectory(build(norm), data, config)
        diverged[key] = int(stopped)
    return Result(scaled_gradient_ratio=ratio, other_gradient_ratio=others, scale=config.scale, grad_norm=grads,
                  weight_norm=norms, diverged=diverged, lr=config.lr)


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_gradient_scale

    return plot_bn_gradient_scale(result)


def growth(grads: list) -> float:
    """Largest gradient norm over training, relative to the first step's (inf when training diverged)."""
    finite = [g for g in grads if math.isfinite(g)]
    return max(finite) / finite[0] if len(finite) == len(grads) and finite else math.inf


def late(values: list, fraction: float = 0.2) -> float:
    """The median over the last ``fraction`` of the steps."""
    tail = sorted(values[-max(int(len(values) * fraction), 1):])
    return float(tail[len(tail) // 2])


def claims(result: Result) -> list[Claim]:
    r, a = result, result.scale
    g, w = r.grad_norm["bn"], r.weight_norm["bn"]
    return [
        claim(f"BN is invariant to the scale of a layer's weights, so scaling them by a = {a:g} divides that "
              "layer's gradient by a and leaves the other layers' gradients unchanged (exact as BN's ε → 0; "
              "torch's fixed ε = 1e-5 leaves a relative error of about ε, inside the bound).", PAPER,
              {"gradient_ratio": r.scaled_gradient_ratio, "scale": a, "others_deviation": r.other_gradient_ratio},
              "abs(gradient_ratio / scale - 1) < 1e-4 and others_deviation < 1e-4",
              paper="exactly 1/a (the paper's identity)",
              labels={"gradient_ratio": "|∇W| / |∇(aW)| of the scaled layer",
                      "scale": "a", "others_deviation": "largest |ratio − 1| over the other layers"}),
        claim(f"During training at the same large rate ({r.lr:g}), BN controls the size of the derivatives: the "
              "largest gradient norm of a middle layer, relative to its first step's, grows at least ten times "
              "less with BN than without (a ratio of growths, compared on a log scale: over seeds it ranges over "
              "orders of magnitude).", SOURCE,
              {"growth_plain": growth(r.grad_norm["plain"]), "growth_bn": growth(g)},
              "log10(growth_plain / growth_bn) > 1",
              labels={"growth_plain": "max gradient norm / first, without BN (inf: the run diverged)",
                      "growth_bn": "max gradient norm / first, with BN"}),
        claim("With BN, a large rate grows the weights and so shrinks its own later gradients (the 1/a above): "
              "the weight norm rises and the gradient norm over the last fifth of training is below the first "
              "step's.", PAPER,
              {"weight_growth_bn": late(w) / w[0], "late_gradient_bn": late(g) / g[0]},
              "weight_growth_bn > 1 and late_gradient_bn < 1",
              labels={"weight_growth_bn": "weight norm, last fifth (median) / first, with BN",
                      "late_gradient_bn": "gradient norm, last fifth (median) / first, with BN"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = []
    for key, name in (("plain", "without BN"), ("bn", "with BN")):
        g, w = result.grad_norm[key], result.weight_norm[key]
        rows.append([name, g[0], max(g), late(g), w[0], late(w), float(result.diverged[key])])
    return [Table(f"middle layer at learning rate {result.lr:g}", ["network", "gradient norm, step 1",
                                                                   "max gradient norm", "gradient norm, last fifth",
                                                                   "weight norm, step 1", "weight norm, last fifth",
                                                                   "diverged (share of seeds)"], rows)]
