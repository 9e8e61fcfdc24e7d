r"""BatchNorm after the first few Dense layers: its outputs keep mean 0 and variance 1 across epochs.

Batch Normalization (the module, "Details"; Ioffe & Szegedy 2015, Alg. 1) standardizes each feature over
the :math:`m_B` examples of a mini-batch, then shifts and scales it with the learned :math:`\beta, \gamma`:

.. math:: \mu_B = \frac{1}{m_B} \sum_{i=1}^{m_B} y^{(i)}, \quad
          \sigma_B^2 = \frac{1}{m_B} \sum_{i=1}^{m_B} (y^{(i)} - \mu_B)^2, \quad
          \hat{y}^{(i)} = \frac{y^{(i)} - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \quad
          z^{(i)} = \gamma \hat{y}^{(i)} + \beta.

The module's chart: "adding a BatchNormalization layer after the first few
Dense layers" of the running sigmoid network "significantly improves the Loss
and Accuracy compared to the network without it", and "the output of the
BatchNormalization layer roughly maintains mean 0 and unit variance across
epochs". Here: a 4-layer sigmoid MLP on digits (Keras ``Dense`` includes the
activation, so BN comes after the sigmoid of hidden layers 1 and 2), against
the same network without BN. At every epoch we measure, on the test set in
inference mode, the mean over units of each unit's mean and variance of the
BN outputs, and of the same layers' outputs (the sigmoids) without BN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization"
SOURCE = "seed: Batch Normalization (chart)"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 4
    bn_layers: int = 2           # BN after hidden1..hidden{bn_layers}
    lr: float = 0.1
    epochs: int = 15
    batch_size: int = 32

    FULL = dict(width=128, epochs=40)


@dataclass
class Result:
    epochs: list                 # evaluation index (0 = before training)
    layers: list                 # names of the measured modules in the BN network
    stats: dict                  # "bn"/"plain" -> {"mean": [[per layer] per epoch], "var": [[...] per epoch]}
    test_loss: dict              # "bn"/"plain" -> per epoch
    test_acc: dict
    gamma_sq: list               # mean over units of the learned BN scale γ², per BN layer, at the end


def build(config: Config, data, with_bn: bool) -> nn.Sequential:
    """Sigmoid MLP; with BN after the sigmoid of the first ``bn_layers`` hidden layers."""
    from impediments.models import mlp

    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="sigmoid", norm="batch" if with_bn else None, norm_position="post")
    if with_bn:
        for k in range(config.bn_layers + 1, config.depth + 1):
            model.get_submodule(f"hidden{k}").norm = nn.Identity()
    return model


class OutputMoments:
    """Training callback: per-unit mean and variance of chosen modules' outputs on ``X`` (inference mode)."""

    def __init__(self, model: nn.Module, X: torch.Tensor, names: list[str]) -> None:
        self.model, self.X, self.names = model, X, names
        self.mean: list[list[float]] = []
        self.var: list[list[float]] = []

    @torch.no_grad()
    def on_eval(self, step, metrics) -> None:
        seen: dict[str, torch.Tensor] = {}
        handles = [self.model.get_submodule(n).register_forward_hook(
            lambda m, i, out, n=n: seen.__setitem__(n, out)) for n in self.names]
        was = self.model.training
        try:
            self.model.eval()
            self.model(self.X)
        finally:
            for h in handles:
                h.remove()
            self.model.train(was)
        self.mean.append([float(seen[n].mean(0).mean()) for n in self.names])
        self.var.append([float(seen[n].var(0).mean()) for n in self.names])


def run(config: Config) -> Result:
    from impediments.data import load_dataset

    data = load_dataset("digits", seed=config.seed)
    names = {"bn": [f"hidden{k}.norm" for k in range(1, config.bn_layers + 1)],
             "plain": [f"hidden{k}.act" for k in range(1, config.bn_layers + 1)]}
    stats, loss, acc = {}, {}, {}
    for key in ("bn", "plain"):
        model = build(config, data, key == "bn")
        probe = OutputMoments(model, data.X_test, names[key])
        h = train(model, data, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                  callbacks=[probe])
        stats[key] = {"mean": probe.mean, "var": probe.var}
        loss[key], acc[key] = h.test_loss, h.test_acc
        if key == "bn":
            gamma_sq = [float((model.get_submodule(n).weight.detach() ** 2).mean()) for n in names["bn"]]
    return Result(epochs=list(range(len(loss["bn"]))), layers=names["bn"], stats=stats, test_loss=loss,
                  test_acc=acc, gamma_sq=gamma_sq)


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_output_stats

    return plot_bn_output_stats(result)


def claims(result: Result) -> list[Claim]:
    # epoch 1 is reported apart: the running variance starts at 1 while the sigmoid outputs it normalizes have
    # variance ~0.016, and its EMA (momentum 0.1) needs ~ln(60)/0.1 ≈ 40 steps (about one epoch) to catch up
    bn_mean = np.asarray(result.stats["bn"]["mean"])[2:]
    bn_var = np.asarray(result.stats["bn"]["var"])[2:]
    epoch1_var = result.stats["bn"]["var"][1]
    plain_var = np.asarray(result.stats["plain"]["var"])[1:]
    plain_mean = np.asarray(result.stats["plain"]["mean"])[1:]
    return [
        claim("The output of the BatchNormalization layer roughly maintains mean 0 and unit variance across "
              "epochs (measured on test data in inference mode, each BN layer, from epoch 2 on). Measured "
              "exception: after epoch 1 the variance is still below 1 (reported) because the running variance "
              "starts at 1, about 60 times the true variance of the sigmoid outputs, and its moving average "
              "needs about an epoch to catch up. The learned scale γ sets the output variance to about γ², so with "
              "longer training (full mode) the variance can drift further; the final mean γ² is reported.", SOURCE,
              {"max_abs_mean": float(np.abs(bn_mean).max()), "max_abs_var_minus_1": float(np.abs(bn_var - 1).max()),
               **{f"final_mean_gamma_sq_layer{k + 1}": g for k, g in enumerate(result.gamma_sq)},
               **{f"epoch1_var_layer{k + 1}": float(v) for k, v in enumerate(epoch1_var)}},
              "max_abs_mean <= 0.25 and max_abs_var_minus_1 <= 0.5",
              labels={"max_abs_mean": "largest |mean| of a BN output, epoch 2 on",
                      "max_abs_var_minus_1": "largest |variance - 1| of a BN output, epoch 2 on",
                      **{f"final_mean_gamma_sq_layer{k + 1}": f"BN layer {k + 1}: final mean γ²"
                         for k in range(len(result.gamma_sq))},
                      **{f"epoch1_var_layer{k + 1}": f"BN layer {k + 1}: output variance after epoch 1"
                         for k in range(len(epoch1_var))}}),
        claim("Without BN the same layers' outputs (sigmoids) are far from mean 0 and variance 1 (a sigmoid "
              "output in (0, 1) has variance at most 1/4).", SOURCE,
              {"plain_min_mean": float(plain_mean.min()), "plain_max_var": float(plain_var.max())},
              "plain_max_var <= 0.25 and plain_min_mean > 0",
              labels={"plain_min_mean": "without BN: smallest mean of those layers' outputs",
                      "plain_max_var": "without BN: largest variance of those layers' outputs"}),
        claim("With BN after the first few Dense layers the sigmoid network reaches a lower test loss and a "
              "higher test accuracy at the end of training.", SOURCE,
              {"loss_bn": result.test_loss["bn"][-1], "loss_plain": result.test_loss["plain"][-1],
               "acc_bn": result.test_acc["bn"][-1], "acc_plain": result.test_acc["plain"][-1]},
              "loss_bn < loss_plain and acc_bn > acc_plain",
              labels={"loss_bn": "final test loss with BN", "loss_plain": "final test loss without BN",
                      "acc_bn": "final test accuracy with BN", "acc_plain": "final test accuracy without BN"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = []
    for key in ("bn", "plain"):
        m, v = result.stats[key]["mean"], result.stats[key]["var"]
        for e in sorted({1, len(m) // 2, len(m) - 1}):
            rows.append([key, e, *[float(x) for x in m[e]], *[float(x) for x in v[e]]])
    n = len(result.layers)
    return [Table("mean and variance of the outputs of the first layers (test set, inference mode)",
                  ["network", "epoch", *[f"mean L{k + 1}" for k in range(n)], *[f"var L{k + 1}" for k in range(n)]],
                  rows)]
