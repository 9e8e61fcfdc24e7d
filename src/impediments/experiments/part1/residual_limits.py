r"""The limits of good initialization: residual networks without normalization.

Glorot and He "implicitly assume a sequential network: connections only
between consecutive layers. It has been observed that, when residual
connections are allowed, the analysis is flawed" (module, "Limits of good
initialization"). In a residual block

.. math:: x_{l+1} = x_l + F(x_l)

with He init, :math:`\mathrm{Var}(F(x)) \approx \mathrm{Var}(x)`, so the variance roughly doubles per block
and the output standard deviation at init grows exponentially with depth. Fixup (Zhang, Dauphin &
Ma 2019) zeroes the last layer of every branch and the classifier and scales
the other branch layers by :math:`L^{-1/(2m-2)}`, so every block starts as the
identity: the output std is flat in depth, and the network trains at a
learning rate where plain He init diverges.

"Other techniques (such as Batch Normalization, to be introduced shortly) must
be used": with BatchNorm at the start of every branch (pre-activation blocks,
He init), each branch sees standardized inputs whatever the stream's scale, so
each block adds a branch of about the same variance :math:`v`,

.. math:: \mathrm{Var}(x_L) \approx \mathrm{Var}(x_0) + L v,

and the stream's standard deviation grows no faster than :math:`\sqrt{L}`
(linear, not exponential, growth of the variance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Initialization: limits (residual networks)"
SOURCE = "seed: Limits of good initialization; Zhang, Dauphin & Ma 2019 (Fixup)"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    depths: tuple[int, ...] = (8, 16, 32, 64)
    width: int = 64
    probe_batch: int = 256
    train_depth: int = 16
    lr: float = 0.05
    steps: int = 100
    batch_size: int = 64

    FULL = dict(depths=(8, 16, 32, 64, 128), width=128, train_depth=32, steps=400)


@dataclass
class Result:
    depths: list
    he_std: np.ndarray            # std of the features entering the classifier, at init, per depth
    fixup_std: np.ndarray
    bn_stream_std: np.ndarray     # std of the residual stream after the last block, BN in every branch, per depth
    train_depth: int
    lr: float
    steps: list                   # evaluation steps (Fixup run)
    he_train_loss: list           # evaluations until the run stopped
    he_diverged: bool
    he_first_loss: float
    fixup_train_loss: list
    fixup_test_acc: list
    fixup_diverged: bool
    bn_train_loss: list           # the BN residual network at the same rate (evaluation steps as Fixup's)
    bn_first_loss: float
    bn_diverged: bool


def build(config: Config, depth: int, scheme: str, in_features: int, classes: int) -> nn.Module:
    """A residual MLP of ``depth`` blocks under plain He init, :func:`impediments.init.fixup`, or He init with
    BatchNorm in every branch (``"bn"``)."""
    from impediments.models import mlp

    from impediments.init import fixup, initialize

    model = seeded(config.seed, mlp, in_features, classes, width=config.width, depth=depth, residual=True,
                   norm="batch" if scheme == "bn" else None)
    if scheme == "fixup":
        fixup(model, seed=config.seed)
    else:
        initialize(model, "he_normal", bias=0.0, seed=config.seed)
    return model


@torch.no_grad()
def feature_std(model: nn.Module, X: torch.Tensor) -> float:
    """Std of the features entering the classifier (everything but the last layer)."""
    return float(model[:-1](X).double().std())


@torch.no_grad()
def stream_std(model: nn.Module, X: torch.Tensor) -> float:
    """Std of the residual stream after the last block (before any head norm, activation and classifier)."""
    h = X
    for name, child in model.named_children():
        if name in ("head_norm", "head_act", "output"):
            break
        h = child(h)
    return float(h.double().std())


def run(config: Config) -> Result:
    from impediments.data import load_dataset

    data = load_dataset("digits", seed=config.seed)
    X = data.X_train[: config.probe_batch]
    stds = {s: np.array([feature_std(build(config, d, s, data.in_features, data.num_classes), X)
                         for d in config.depths]) for s in ("he", "fixup")}
    bn_stream = np.array([stream_std(build(config, d, "bn", data.in_features, data.num_classes), X)
                          for d in config.depths])
    hist = {}
    for scheme in ("he", "fixup", "bn"):
        model = build(config, config.train_depth, scheme, data.in_features, data.num_classes)
        hist[scheme] = train(model, data, seed=config.seed, steps=config.steps, batch_size=config.batch_size,
                             lr=config.lr, eval_every=max(config.steps // 10, 1))
    he, fx = hist["he"], hist["fixup"]
    return Result(depths=list(config.depths), he_std=stds["he"], fixup_std=stds["fixup"],
                  train_depth=config.train_depth, lr=config.lr, steps=fx.eval_steps, he_train_loss=he.train_loss,
                  he_diverged=he.diverged, he_first_loss=he.step_loss[0], fixup_train_loss=fx.train_loss,
                  fixup_test_acc=fx.test_acc, fixup_diverged=fx.diverged, bn_stream_std=bn_stream,
                  bn_train_loss=hist["bn"].train_loss, bn_diverged=hist["bn"].diverged,
                  bn_first_loss=hist["bn"].step_loss[0])


def plot(result: Result):
    from impediments.plots.exp_residual_limits import plot_residual_limits

    return plot_residual_limits(result)


def claims(result: Result) -> list[Claim]:
    r = result
    he, fx, bn = np.asarray(r.he_std), np.asarray(r.fixup_std), np.asarray(r.bn_stream_std)
    return [
        claim("Without normalization, He init makes the output std of a residual network grow with depth "
              f"(blocks {r.depths[0]} to {r.depths[-1]}): the variance analysis assumes a sequential network.",
              SOURCE, {"he_std_first": he[0], "he_std_last": he[-1],
                       "he_min_step_growth": float(np.min(he[1:] / he[:-1])), "he_growth": he[-1] / he[0]},
              "he_min_step_growth > 1 and log10(he_growth) >= 3",
              labels={"he_std_first": "He: output std, shallowest", "he_std_last": "He: output std, deepest",
                      "he_min_step_growth": "He: smallest growth from one depth to the next",
                      "he_growth": "He: output std, deepest / shallowest"}),
        claim("Fixup keeps the output std at init flat in depth.", "Zhang, Dauphin & Ma 2019 (Fixup)",
              {"fixup_max_over_min": fx.max() / fx.min()}, "fixup_max_over_min <= 1.5",
              labels={"fixup_max_over_min": "Fixup: largest / smallest output std over depths"}),
        claim(f"At the same learning rate ({r.lr}) a {r.train_depth}-block residual MLP diverges under plain He "
              "init and trains under Fixup (a shared learning rate is the point here: He init's output scale "
              "grows with depth, so any rate that trains Fixup is too large for it).",
              "Zhang, Dauphin & Ma 2019 (Fixup)",
              {"he_diverged": r.he_diverged, "he_first_loss": r.he_first_loss,
               "fixup_final_loss": r.fixup_train_loss[-1], "fixup_final_acc": r.fixup_test_acc[-1],
               "fixup_diverged": r.fixup_diverged, "ln10": math.log(10)},
              "he_diverged >= 1 and fixup_diverged <= 0 and fixup_final_loss <= 0.5 * ln10",
              labels={"he_diverged": "He: diverged (1 = non-finite loss)", "he_first_loss": "He: first loss",
                      "fixup_final_loss": "Fixup: final training loss", "fixup_final_acc": "Fixup: final test accuracy",
                      "fixup_diverged": "Fixup: diverged (1 = yes)", "ln10": "ln 10 (chance level)"}),
        claim("BatchNorm is one of the other techniques: with BN in every branch (He init) the residual stream's "
              f"std grows no faster than the square root of the depth from {r.depths[0]} to {r.depths[-1]} blocks "
              "(the variance grows linearly, each block adding one normalized branch), where plain He init's "
              "grows exponentially.", "seed: Limits of good initialization",
              {"bn_growth": float(bn[-1] / bn[0]), "sqrt_depth_ratio": math.sqrt(r.depths[-1] / r.depths[0]),
               "he_growth": he[-1] / he[0]},
              "bn_growth <= sqrt_depth_ratio",
              labels={"bn_growth": "BN: stream std, deepest / shallowest",
                      "sqrt_depth_ratio": "square root of the depth ratio",
                      "he_growth": "He: output std, deepest / shallowest"}),
        claim(f"And the {r.train_depth}-block network with BN trains at the learning rate ({r.lr}) where plain He "
              f"init diverges: no divergence, and its training loss falls (slowly at this budget: {r.train_depth} "
              "blocks and a rate chosen for Fixup, not for BN).", "seed: Limits of good initialization",
              {"bn_diverged": r.bn_diverged, "bn_first_loss": r.bn_first_loss, "bn_final_loss": r.bn_train_loss[-1],
               "ln10": math.log(10)},
              "bn_diverged <= 0 and bn_final_loss < bn_first_loss",
              labels={"bn_diverged": "BN: diverged (1 = yes)", "bn_first_loss": "BN: first training loss",
                      "bn_final_loss": "BN: final training loss", "ln10": "ln 10 (chance level)"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[d, float(h), float(f)] for d, h, f in zip(result.depths, result.he_std, result.fixup_std)]
    return [Table("std of the classifier's input at init", ["blocks", "He", "Fixup"], rows)]
