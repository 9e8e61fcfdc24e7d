"""BatchNorm before or after the activation: which distribution each placement keeps in shape.

The module: "Normalization is sometimes defined with respect to the
pre-activation outputs :math:`f_{(l)}(\\mathbf{y}_{(l-1)}, W_{(l)})` rather
than the activation outputs :math:`\\mathbf{y}_{(l)}`." Ioffe & Szegedy 2015
(section 3.2) put BN *before* the non-linearity: normalizing
:math:`x = Wu + b` "is more likely to produce activations with a stable
distribution", while the previous layer's output :math:`u` is the output of
another non-linearity, whose shape changes during training. Placed *after*
the activation, BN instead gives the next layer zero-centred inputs, what the
module's zig-zag argument asks of every layer's input. Both placements are
trained here on the same deep sigmoid MLP (digits, SGD with momentum, the
same rate), and after training two distributions are measured on the test
set (inference mode): how many of the sigmoid's inputs lie in its saturated
tails (:mod:`impediments.activations.regions`), and how far from zero the
mean of each input feature of the Linear layers after the first lies.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization: where, and what it learns"
SOURCE = "seed: Batch Normalization (Notes)"
PAPER = "Ioffe & Szegedy 2015, section 3.2"
PLACEMENTS = ("pre", "post")


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    depth: int = 4
    width: int = 64
    steps: int = 400
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 64

    FULL = dict(steps=2000, width=128)


@dataclass
class Result:
    steps: list                      # evaluation steps
    test_acc: dict                   # "pre"/"post" -> test accuracy at each evaluation
    saturated: dict                  # "pre"/"post" -> per hidden layer: fraction of sigmoid inputs in a saturated tail
    input_mean: dict                 # "pre"/"post" -> per Linear layer after the first: mean over features of |mean|


@torch.no_grad()
def inputs_to(model: nn.Module, kind: type, X: torch.Tensor) -> list[torch.Tensor]:
    """The inputs of every submodule of type ``kind``, in forward order, on ``X`` in inference mode."""
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
               for m in model.modules() if isinstance(m, kind)]
    was = model.training
    try:
        model.eval()(X)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return seen


def distributions(model: nn.Module, X: torch.Tensor) -> tuple[list[float], list[float]]:
    """(saturated fraction of each sigmoid's inputs, mean |feature mean| of each Linear input after the first)."""
    from impediments.activations.regions import classify

    saturated = [float(classify(x, "sigmoid")[0]) for x in inputs_to(model, nn.Sigmoid, X)]
    centring = [float(x.flatten(1).mean(0).abs().mean()) for x in inputs_to(model, nn.Linear, X)[1:]]
    return saturated, centring


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)
    acc, saturated, centring, steps = {}, {}, {}, []
    for position in PLACEMENTS:
        model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width,
                       depth=config.depth, activation="sigmoid", norm="batch", norm_position=position)
        h = train(model, data, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                  momentum=config.momentum, seed=config.seed, eval_every=max(config.steps // 10, 1))
        acc[position], steps = h.test_acc, h.eval_steps
        saturated[position], centring[position] = distributions(model, data.X_test)
    return Result(steps=steps, test_acc=acc, saturated=saturated, input_mean=centring)


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_placement

    return plot_bn_placement(result)


def _mean(values: list) -> float:
    return float(sum(values) / len(values))


def claims(result: Result) -> list[Claim]:
    r = result
    sat = {p: _mean(r.saturated[p]) for p in PLACEMENTS}
    centre = {p: _mean(r.input_mean[p]) for p in PLACEMENTS}
    return [
        claim("BN before the activation keeps the sigmoid's inputs out of its saturated tails; after the "
              "activation it does not, since nothing then bounds the pre-activations (a smaller saturated "
              "fraction, averaged over the hidden layers, after training at the same rate; the paper argues this "
              "and gives no number).", PAPER,
              {"saturated_bn_before": sat["pre"], "saturated_bn_after": sat["post"]},
              "saturated_bn_before < saturated_bn_after",
              labels={"saturated_bn_before": "saturated fraction of sigmoid inputs, BN before the sigmoid",
                      "saturated_bn_after": "saturated fraction of sigmoid inputs, BN after the sigmoid"}),
        claim("BN after the activation zero-centres the next layer's inputs (the module's zig-zag argument); "
              "before the activation it leaves them at the sigmoid's positive mean (mean |feature mean| of the "
              "Linear layers' inputs after the first, smaller after).", SOURCE,
              {"input_mean_bn_after": centre["post"], "input_mean_bn_before": centre["pre"]},
              "input_mean_bn_after < input_mean_bn_before",
              labels={"input_mean_bn_after": "mean |feature mean| of the next layers' inputs, BN after",
                      "input_mean_bn_before": "mean |feature mean| of the next layers' inputs, BN before"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[k + 1, *[result.saturated[p][k] for p in PLACEMENTS]] for k in range(len(result.saturated["pre"]))]
    rows.append(["final test accuracy", *[result.test_acc[p][-1] for p in PLACEMENTS]])
    return [Table("saturated fraction of the sigmoid's inputs per hidden layer (test set, after training)",
                  ["hidden layer", "BN before the sigmoid", "BN after the sigmoid"], rows)]
