r"""Dropout before BatchNorm: the variance shift (Li, Chen, Hu & Yang 2018).

The module: "Dropout causes the batch statistics computed at training time
to differ from the population statistics". Dropout with keep probability p
turns an input with mean c and variance v into :math:`X = a x / p`,
:math:`a \sim \mathrm{Bernoulli}(p)`, whose variance in training is
:math:`(c^2 + v)/p - c^2` but v at inference: the ratio is about 1/p for a
zero-mean input, and a BatchNorm right after dropout normalizes test inputs
with the wrong variance. The fix is to put dropout after the last BatchNorm.

Three ReLU MLPs on digits, each hidden block in the order shown:

* ``before``: linear → dropout → BN → ReLU (dropout directly before every BN);
* ``between``: linear → BN → ReLU → dropout (the usual stack: a Linear between dropout and the next BN);
* ``after``: linear → BN → ReLU, dropout only after the last BN, before the output layer.

We measure :func:`impediments.norm.variance_shift` (train/inference ratio of
each BN's input variance) for a sweep of dropout rates, check the first
layer's ratio against Li et al.'s formula from the channel means and
variances, and compare test accuracy with the usual running statistics
(collected in training mode, dropout on) and with statistics recomputed in
inference mode (dropout off, PreciseBN), Li et al.'s "adjust BN statistics".
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train
from impediments.experiments.part2._common import inputs_of

SECTION = "Batch Normalization and Dropout"
SOURCE = "Li et al. 2018"
ARRANGEMENTS = ("before", "between", "after")


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 128
    depth: int = 3
    rates: tuple[float, ...] = (0.1, 0.3, 0.5)   # dropout rates; keep probability p = 1 - rate
    train_rate: float = 0.5                      # the rate of the trained networks (accuracy comparison)
    lr: float = 0.1
    epochs: int = 10
    batch_size: int = 50
    gap_examples: int = 300                      # training digits of the generalization-gap comparison
    gap_epochs: int = 40

    FULL = dict(width=256, rates=(0.1, 0.3, 0.5, 0.7), epochs=20, gap_epochs=60)


@dataclass
class Result:
    rates: list
    shift: dict         # arrangement -> [[ratio per BN layer] per rate] (untrained networks)
    formula: list       # Li et al.'s predicted ratio of the first BN of "before", per rate
    baseline: list      # ratio per BN layer of the same network without dropout (rate 0)
    trained_shift: dict  # arrangement -> [ratio per BN layer] after training at train_rate
    acc_running: dict   # arrangement -> test accuracy with running statistics collected with dropout on
    acc_adjusted: dict  # arrangement -> test accuracy with statistics recomputed with dropout off
    train_rate: float
    preceded_by: dict   # arrangement -> [class of the module that ran just before each BN] (impediments.monitor)
    gap: dict           # "plain" | "bn" | "dropout" -> test loss - training loss after training on gap_examples
    gap_test_acc: dict
    gap_examples: int
    gap_epochs: int


def build(arrangement: str, in_features: int, out_features: int, width: int, depth: int, rate: float) -> nn.Sequential:
    """The three orders of Linear, Dropout, BatchNorm and ReLU (see the module docstring)."""
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"unknown arrangement {arrangement!r}; valid: {', '.join(ARRANGEMENTS)}")
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    fan_in = in_features
    for k in range(1, depth + 1):
        parts = [("linear", nn.Linear(fan_in, width))]
        if arrangement == "before":
            parts.append(("dropout", nn.Dropout(rate)))
        parts += [("norm", nn.BatchNorm1d(width)), ("act", nn.ReLU())]
        if arrangement == "between":
            parts.append(("dropout", nn.Dropout(rate)))
        layers.append((f"hidden{k}", nn.Sequential(OrderedDict(parts))))
        fan_in = width
    if arrangement == "after":
        layers.append(("dropout", nn.Dropout(rate)))
    layers.append(("output", nn.Linear(width, out_features)))
    return nn.Sequential(OrderedDict(layers))


def li_formula(x: torch.Tensor, keep: float) -> float:
    r"""Pooled predicted ratio :math:`\sum_c [(c^2+v)/p - c^2] / \sum_c v`.

    c and v are the per-channel mean and variance of ``x``; p is the keep probability.
    """
    c, v = x.mean(0), x.var(0)
    return float(((c ** 2 + v) / keep - c ** 2).sum() / v.sum())


def shifts(model: nn.Module, batches: list, *, fresh: bool = False) -> list[float]:
    """Variance-shift ratio of each BN (in order). ``fresh``: an untrained network, whose default running
    statistics (0, 1) would distort the inference pass, first gets the statistics training would collect
    (PreciseBN in training mode, dropout on)."""
    from impediments.norm import recompute_bn_stats, variance_shift

    if fresh:
        recompute_bn_stats(model.train(), batches, max_batches=len(batches))
    ratios = variance_shift(model, batches, max_batches=len(batches))
    return [ratios[k] for k in sorted(ratios)]


def preceded_by(model: nn.Module, batches: list) -> list[str]:
    """Per BN (in order): the class of the module that ran just before it, as :class:`impediments.monitor.Monitor`
    reports it (the doctor's dropout-before-BN rule reads this)."""
    from impediments.monitor import Monitor

    model.train()
    with torch.no_grad(), Monitor(model, every=1) as mon:
        for xb, _ in batches[:2]:
            model(xb)
    stats = mon.stats().batchnorm
    return [str(stats[k].preceded_by) for k in sorted(stats)]


GAP_NETWORKS = {"plain": dict(norm=None, dropout=0.0), "bn": dict(norm="batch", dropout=0.0),
                "dropout": dict(norm=None, dropout=None)}


def generalization_gaps(config: Config, data) -> tuple[dict, dict]:
    """Test loss minus training loss (and test accuracy) of a ReLU MLP without BN, with BN, and with Dropout only.

    Trained on the first ``gap_examples`` training digits, so that a network can overfit within the budget.
    """
    import dataclasses

    from impediments.models import mlp
    from impediments.train import evaluate

    small = dataclasses.replace(data, X_train=data.X_train[: config.gap_examples],
                                y_train=data.y_train[: config.gap_examples])
    gap, acc = {}, {}
    for key, kw in GAP_NETWORKS.items():
        dropout = config.train_rate if kw["dropout"] is None else kw["dropout"]
        model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                       activation="relu", norm=kw["norm"], dropout=dropout)
        train(model, small, seed=config.seed, epochs=config.gap_epochs, batch_size=config.batch_size, lr=config.lr)
        train_loss = evaluate(model, small.X_train, small.y_train)[0]
        test_loss, acc[key] = evaluate(model, data.X_test, data.y_test)
        gap[key] = test_loss - train_loss
    return gap, acc


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.data.batching import iterate_batches
    from impediments.norm import recompute_bn_stats
    from impediments.train import evaluate

    data = load_dataset("digits", seed=config.seed)
    batches = list(iterate_batches(data.X_train, data.y_train, config.batch_size, shuffle=False))
    args = (data.in_features, data.num_classes, config.width, config.depth)
    shift = {a: [] for a in ARRANGEMENTS}
    formula = []
    for rate in config.rates:
        for a in ARRANGEMENTS:
            shift[a].append(shifts(seeded(config.seed, build, a, *args, rate), batches, fresh=True))
        before = seeded(config.seed, build, "before", *args, rate)
        formula.append(li_formula(inputs_of(before, "hidden1.norm", data.X_train), 1 - rate))
    baseline = shifts(seeded(config.seed, build, "after", *args, 0.0), batches, fresh=True)
    trained_shift, acc_running, acc_adjusted = {}, {}, {}
    before_bn = {a: preceded_by(seeded(config.seed, build, a, *args, config.train_rate), batches)
                 for a in ARRANGEMENTS}
    for a in ARRANGEMENTS:
        model = seeded(config.seed, build, a, *args, config.train_rate)
        train(model, data, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr)
        trained_shift[a] = shifts(model, batches)
        acc_running[a] = evaluate(model, data.X_test, data.y_test)[1]
        adjusted = copy.deepcopy(model).eval()      # eval(): dropout off while the statistics are recomputed
        recompute_bn_stats(adjusted, batches, max_batches=len(batches))
        acc_adjusted[a] = evaluate(adjusted, data.X_test, data.y_test)[1]
    gap, gap_acc = generalization_gaps(config, data)
    return Result(rates=list(config.rates), shift=shift, formula=formula, baseline=baseline,
                  trained_shift=trained_shift,
                  acc_running=acc_running, acc_adjusted=acc_adjusted, train_rate=config.train_rate,
                  preceded_by=before_bn, gap=gap, gap_test_acc=gap_acc, gap_examples=config.gap_examples,
                  gap_epochs=config.gap_epochs)


def plot(result: Result, band=None):
    from impediments.plots.part2 import plot_bn_dropout

    return plot_bn_dropout(result, band)


def claims(result: Result) -> list[Claim]:
    keep = 1 - np.asarray(result.rates)
    first_before = np.asarray([s[0] for s in result.shift["before"]])
    after = np.asarray(result.shift["after"])
    i = len(result.rates) - 1
    top = f"{result.rates[i]:g}"
    gain = {a: result.acc_adjusted[a] - result.acc_running[a] for a in ARRANGEMENTS}
    g = result.gap
    return [
        claim("Dropout right before BN shifts the BN input variance between training and inference by about 1/p "
              "(Li et al.: (c²+v)/p − c² over v); checked on the first BN, whose input is the same in both modes.",
              SOURCE, {"max_rel_err_vs_formula": float(np.max(np.abs(first_before / np.asarray(result.formula) - 1))),
                       "max_rel_err_vs_inverse_p": float(np.max(np.abs(first_before * keep - 1))),
                       "ratio_at_largest_rate": float(first_before[i]),
                       "inverse_p_at_largest_rate": float(1 / keep[i])},
              "max_rel_err_vs_formula <= 0.05 and max_rel_err_vs_inverse_p <= 0.15",
              paper="(c² + v)/p − c² over v, about 1/p (2 at p = 0.5) for zero-mean unit-variance input: Li et al.'s "
                    "derivation, compared with our measured ratio at each rate",
              labels={"max_rel_err_vs_formula": "largest relative error of the variance ratio vs Li et al.'s formula",
                      "max_rel_err_vs_inverse_p": "largest relative error of the variance ratio vs 1/p",
                      "ratio_at_largest_rate": f"variance ratio at dropout {top}",
                      "inverse_p_at_largest_rate": f"1/p at dropout {top}"}),
        claim("With dropout after the last BN, dropout causes no variance shift: every BN's ratio is exactly that "
              "of the same network without dropout, at every rate.", SOURCE,
              {"max_abs_diff_vs_no_dropout": float(np.max(np.abs(after - np.asarray(result.baseline))))},
              "max_abs_diff_vs_no_dropout <= 1e-6",
              labels={"max_abs_diff_vs_no_dropout": "largest change of a BN's ratio vs no dropout"}),
        claim(f"With dropout ({result.train_rate:g}) after the last BN the trained network's ratios are about 1: "
              "within a tenth of the shift 1/p − 1 that dropout right before BN causes. (Untrained "
              "networks deviate more, from batch- versus population-statistics alone; reported.)", SOURCE,
              {"trained_max_abs_ratio_minus_1": float(np.max(np.abs(np.asarray(result.trained_shift["after"]) - 1))),
               "untrained_max_abs_ratio_minus_1": float(np.max(np.abs(after - 1))),
               "shift_size": 1 / (1 - result.train_rate) - 1},
              "trained_max_abs_ratio_minus_1 <= 0.1 * shift_size",
              paper="ratio 1, no shift, once dropout follows the last BN (Li et al. 2018's fix; their variance "
                    "analysis, not a measured network)",
              labels={"trained_max_abs_ratio_minus_1": "trained: largest |ratio - 1|",
                      "untrained_max_abs_ratio_minus_1": "untrained: largest |ratio - 1|",
                      "shift_size": "the shift 1/p - 1 of dropout right before BN"}),
        claim("The usual stack (dropout after the activation, then Linear, then the next BN) also shifts the "
              "variance of every BN after the first, by more than 10% at the largest rate.", SOURCE,
              {"min_ratio_later_layers": float(min(result.shift["between"][i][1:]))},
              "min_ratio_later_layers >= 1.1",
              labels={"min_ratio_later_layers": f"smallest variance ratio of BN 2 and later, dropout {top}"}),
        claim("The monitor sees the arrangement: it reports Dropout as the module that runs just before every BN "
              "of 'before' and before none of 'between' or 'after' (the doctor's rule for this pitfall reads it).",
              "impediments.monitor", {f"dropout_before_bn_{a}": sum(p == "Dropout" for p in result.preceded_by[a])
                                      for a in ARRANGEMENTS} | {"bn_layers": len(result.preceded_by["before"])},
              "dropout_before_bn_before >= bn_layers and dropout_before_bn_between + dropout_before_bn_after <= 0",
              labels={**{f"dropout_before_bn_{a}": f"'{a}': BNs the monitor sees preceded by Dropout"
                         for a in ARRANGEMENTS}, "bn_layers": "BN layers"}),
        claim(f"Measured, reported honestly: test accuracy with the running statistics (collected with dropout on) "
              f"versus statistics recomputed with dropout off, at dropout {result.train_rate:g}. Li et al. find the "
              "recomputed statistics help when dropout precedes BN; at this small scale the difference is small. "
              "Checked only that recomputing does not change accuracy when dropout comes after the last BN "
              "(no shift to correct).", SOURCE,
              {**{f"acc_running_{a}": result.acc_running[a] for a in ARRANGEMENTS},
               **{f"gain_{a}": gain[a] for a in ARRANGEMENTS}},
              "abs(gain_after) <= 0.01",
              labels={**{f"acc_running_{a}": f"'{a}': test accuracy with running statistics" for a in ARRANGEMENTS},
                      **{f"gain_{a}": f"'{a}': accuracy gain from recomputed statistics" for a in ARRANGEMENTS}}),
        claim(f"BN acts as a regularizer and reduces the need for Dropout: the noise of mini-batch statistics "
              f"narrows the generalization gap (test loss minus training loss, after {result.gap_epochs} epochs on "
              f"{result.gap_examples} training digits, same learning rate) compared with the same network without "
              f"BN; Dropout ({result.train_rate:g}) without BN is shown next to it.",
              "seed: Batch Normalization; Ioffe & Szegedy 2015",
              {"gap_plain": g["plain"], "gap_bn": g["bn"], "gap_dropout": g["dropout"],
               "test_acc_plain": result.gap_test_acc["plain"], "test_acc_bn": result.gap_test_acc["bn"],
               "test_acc_dropout": result.gap_test_acc["dropout"]},
              "gap_bn < gap_plain",
              labels={"gap_plain": "no BN, no Dropout: test loss - training loss",
                      "gap_bn": "BN: test loss - training loss", "gap_dropout": "Dropout: test loss - training loss",
                      "test_acc_plain": "no BN, no Dropout: test accuracy", "test_acc_bn": "BN: test accuracy",
                      "test_acc_dropout": "Dropout: test accuracy"},
              inconclusive_reason="at this scale (a few hundred digits, an MLP) the regularizing noise of "
              "mini-batch statistics is small next to seed-to-seed spread; the paper's effect is on ImageNet "
              "Inception, where BN let the authors remove Dropout."),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[a, *[float(v) for v in result.trained_shift[a]], result.acc_running[a], result.acc_adjusted[a]]
            for a in ARRANGEMENTS]
    n = len(result.trained_shift["before"])
    return [Table(f"trained networks, dropout {result.train_rate:g}: variance-shift ratio of each BN and test accuracy",
                  ["arrangement", *[f"BN {k + 1}" for k in range(n)], "acc, running stats",
                   "acc, stats recomputed without dropout"], rows)]
