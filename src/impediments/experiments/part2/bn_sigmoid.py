"""Batch Normalization on a sigmoid MLP: faster learning, stable sigmoid inputs.

The BatchNorm paper's MNIST experiment (Ioffe & Szegedy 2015, section 4.1):
3 fully connected hidden layers of 100 sigmoid units, "small random
Gaussian" init, batch 60, BN before each nonlinearity. Here on digits
(1347 training images of 8×8), with plain SGD at one shared learning rate.
Figure 1a: test accuracy and loss with and without BN. Figure 1b,c: the
15th, 50th and 85th percentiles, over training, of the input to one
last-layer sigmoid unit. The module: BN "significantly improves the Loss and
Accuracy compared to the network without it".

The percentiles are measured on the test set as a training step computes
them (BatchNorm with the statistics of that batch, on a copy of the model,
so running statistics are not touched). The per-unit drift is
``max_t |q(t) − q(T)|`` over the three percentiles and every evaluation
after the first tenth of training, divided by the final spread
``q85(T) − q15(T)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train
from impediments.experiments.part2._common import gaussian_init, inputs_of, steps_to_reach

SECTION = "Batch Normalization"
SOURCE = "Ioffe & Szegedy 2015, Fig. 1"
QUANTILES = (0.15, 0.5, 0.85)


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 100
    depth: int = 3
    init_std: float = 0.1        # "small random Gaussian" init
    batch_size: int = 60
    lr: float = 0.5              # shared by both networks (plain SGD)
    steps: int = 600
    eval_every: int = 20
    target_acc: float = 0.9      # "learns faster": steps to reach this test accuracy
    warmup_fraction: float = 0.1  # drift is measured after this fraction of training

    FULL = dict(steps=2500, eval_every=50)


@dataclass
class Result:
    steps: list
    runs: dict      # "plain"/"bn" -> {"test_acc", "test_loss", "quantiles": [[q15, q50, q85] of unit 0 per eval],
                    #                  "drift": [relative drift per unit of the last hidden layer]}
    target_acc: float
    warmup_fraction: float


class PercentileProbe:
    """Training callback: per-unit 15/50/85th percentiles of the last-layer sigmoid inputs on a probe set."""

    def __init__(self, model, X, act_name: str) -> None:
        self.model, self.X, self.act_name = model, X, act_name
        self.history: list[torch.Tensor] = []     # each (3, units)

    def on_eval(self, step, metrics) -> None:
        z = inputs_of(self.model, self.act_name, self.X, training=True)
        self.history.append(torch.quantile(z, torch.tensor(QUANTILES), dim=0))


def relative_drift(q: np.ndarray, start: int) -> np.ndarray:
    """Per unit: ``max_{t >= start} max_k |q_k(t) − q_k(T)| / (q85(T) − q15(T))`` for ``q`` of shape (T, 3, units)."""
    final = q[-1]
    spread = np.maximum(final[2] - final[0], 1e-12)
    return np.abs(q[start:] - final).max(axis=(0, 1)) / spread


def train_one(config: Config, norm: str | None) -> dict:
    from impediments.data import load_dataset
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)
    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="sigmoid", norm=norm)
    gaussian_init(model, config.init_std, config.seed)
    probe = PercentileProbe(model, data.X_test, f"hidden{config.depth}.act")
    h = train(model, data, seed=config.seed, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
              eval_every=config.eval_every, callbacks=[probe])
    q = torch.stack(probe.history).numpy()
    start = int(np.searchsorted(h.eval_steps, config.warmup_fraction * config.steps))
    return {"steps": h.eval_steps, "test_acc": h.test_acc, "test_loss": h.test_loss,
            "quantiles": q[:, :, 0].tolist(), "drift": relative_drift(q, start).tolist()}


def run(config: Config) -> Result:
    runs = {"plain": train_one(config, None), "bn": train_one(config, "batch")}
    steps = runs["plain"].pop("steps")
    runs["bn"].pop("steps")
    return Result(steps=steps, runs=runs, target_acc=config.target_acc, warmup_fraction=config.warmup_fraction)


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_sigmoid

    return plot_bn_sigmoid(result)


def _summary(result: Result) -> dict:
    out = {}
    for key, r in result.runs.items():
        out[f"steps_to_{result.target_acc:g}_{key}"] = steps_to_reach(result.steps, r["test_acc"], result.target_acc)
        out[f"final_acc_{key}"] = r["test_acc"][-1]
        out[f"final_loss_{key}"] = r["test_loss"][-1]
        out[f"median_drift_{key}"] = float(np.median(r["drift"]))
        out[f"drift_unit0_{key}"] = r["drift"][0]
    return out


def claims(result: Result) -> list[Claim]:
    s, t = _summary(result), f"{result.target_acc:g}"
    return [
        claim(f"BN learns faster: at the same learning rate the BN network reaches {t} test accuracy in fewer "
              "steps (Fig. 1a; digits instead of MNIST, a few hundred steps instead of 50,000). The shared rate "
              "is the paper's protocol; bn_learning_rates compares each network over its own learning-rate sweep.",
              SOURCE, {"steps_plain": s[f"steps_to_{t}_plain"], "steps_bn": s[f"steps_to_{t}_bn"]},
              "steps_bn < steps_plain",
              labels={"steps_plain": f"steps to {t} test accuracy without BN",
                      "steps_bn": f"steps to {t} test accuracy with BN"}),
        claim("BN ends no worse: final test accuracy with BN is at least that without BN, within 0.01 "
              "(the paper reports higher; reproductions 0.98 vs 0.977).", SOURCE,
              {"acc_plain": s["final_acc_plain"], "acc_bn": s["final_acc_bn"]},
              "acc_bn >= acc_plain - 0.01", paper="0.98 with BN vs 0.977 without (reproductions)",
              labels={"acc_plain": "final test accuracy without BN", "acc_bn": "final test accuracy with BN"}),
        claim("BN ends with no higher test loss (module: BN 'significantly improves the Loss').", "seed: Batch "
              "Normalization", {"loss_plain": s["final_loss_plain"], "loss_bn": s["final_loss_bn"]},
              "loss_bn <= loss_plain",
              labels={"loss_plain": "final test loss without BN", "loss_bn": "final test loss with BN"}),
        claim("The 15/50/85th percentiles of a last-layer sigmoid input drift without BN and stay stable with it "
              "(Fig. 1b,c): median over the layer's units of the largest percentile change after the first "
              f"{result.warmup_fraction:.0%} of training, relative to the final 15-85 spread, is at least twice "
              "as large without BN.", SOURCE,
              {"median_drift_plain": s["median_drift_plain"], "median_drift_bn": s["median_drift_bn"]},
              "median_drift_plain / median_drift_bn >= 2",
              labels={"median_drift_plain": "percentile drift without BN (median over units)",
                      "median_drift_bn": "percentile drift with BN (median over units)"}),
    ]


def tables(result: Result) -> list[Table]:
    s, t = _summary(result), f"{result.target_acc:g}"
    rows = [[key, s[f"steps_to_{t}_{key}"], s[f"final_acc_{key}"], s[f"final_loss_{key}"],
             s[f"median_drift_{key}"]] for key in ("plain", "bn")]
    return [Table("sigmoid MLP on digits, with and without BN",
                  ["network", f"steps to {t} test acc", "final test acc", "final test loss",
                   "median relative percentile drift"], rows)]
