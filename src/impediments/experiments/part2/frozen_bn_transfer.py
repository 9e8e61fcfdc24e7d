"""Frozen BatchNorm in transfer learning: Keras ``trainable=False`` versus a naive PyTorch freeze.

The module's "subtle point": BatchNorm's running statistics are not
trainable weights, so freezing the weights does not by itself stop them from
changing. Keras decided that ``trainable = False`` puts BatchNorm in
inference mode, even while the model trains. In PyTorch,
``requires_grad=False`` leaves BatchNorm in training mode: it normalizes
with the statistics of each (small, target-task) batch and its running
statistics drift toward the target data.

A ReLU MLP with BatchNorm is pretrained on digits 0–4 (source task). A new
5-way head is then trained on a few examples of digits 5–9 (target task):
(a) base frozen with :func:`impediments.norm.freeze` (Keras semantics);
(b) base frozen naively (``requires_grad=False``, BN left in train mode);
(c) everything fine-tuned. We measure how far the running statistics move
from the pretrained ones and the target test accuracy of each.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization and transfer learning"
SOURCE = "seed: BatchNormalization and Transfer Learning"
METHODS = ("keras_freeze", "naive_freeze", "finetune")
LABELS = {"keras_freeze": "(a) norm.freeze (Keras)", "naive_freeze": "(b) requires_grad=False",
          "finetune": "(c) fine-tune all"}


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 2
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    pretrain_epochs: int = 8
    pretrain_lr: float = 0.05
    shots: int = 10               # target training examples per class
    batch_size: int = 10
    steps: int = 150
    lr: float = 0.05

    FULL = dict(width=128, depth=3, pretrain_epochs=20, steps=400)


@dataclass
class Result:
    source_acc: float                # pretrained network on the source test set
    runs: dict                       # method -> {"test_acc": [...], "drift": [per step], "final_acc",
                                     #   "drift_final", "var_change_final", "source_acc_after" (old head),
                                     #   "monitor_running_fraction": share of the base BNs' training-mode
                                     #   forwards that used running statistics (impediments.monitor),
                                     #   "monitor_frozen": share of base BNs the monitor reports frozen}
    eval_steps: list
    shots: int


def bn_layers(model: nn.Module) -> dict[str, nn.Module]:
    from impediments.norm import is_batch_norm

    return {name: m for name, m in model.named_modules() if is_batch_norm(m)}


def running_stat_drift(model: nn.Module, reference: dict) -> tuple[float, float]:
    """Mean over BN channels of ``|μ − μ₀| / σ₀`` and of ``|log(σ²/σ₀²)|`` against the pretrained statistics."""
    shifts, logs = [], []
    for name, bn in bn_layers(model).items():
        mean0, var0 = reference[name]
        shifts.append(((bn.running_mean - mean0).abs() / (var0 + bn.eps).sqrt()).flatten())
        logs.append((bn.running_var / var0).log().abs().flatten())
    return float(torch.cat(shifts).mean()), float(torch.cat(logs).mean())


class DriftProbe:
    """Training callback: running-statistic drift after every step."""

    def __init__(self, model, reference) -> None:
        self.model, self.reference, self.drift = model, reference, []

    def on_step_end(self, step, loss) -> None:
        self.drift.append(running_stat_drift(self.model, self.reference)[0])


def few_shot(data, shots: int, seed: int):
    """``shots`` training examples per class, chosen with a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.cat([torch.nonzero(data.y_train == c).flatten()[torch.randperm(int((data.y_train == c).sum()),
                                                                                   generator=g)[:shots]]
                      for c in range(data.num_classes)])
    return replace(data, X_train=data.X_train[keep], y_train=data.y_train[keep])


def pretrain(config: Config):
    from impediments.data import load_dataset
    from impediments.data.batching import iterate_batches
    from impediments.models import mlp
    from impediments.norm import recompute_bn_stats

    data = load_dataset("digits", seed=config.seed)
    source = data.subset(config.source_classes)
    model = seeded(config.seed, mlp, data.in_features, source.num_classes, width=config.width, depth=config.depth,
                   activation="relu", norm="batch")
    train(model, source, seed=config.seed, epochs=config.pretrain_epochs, batch_size=32, lr=config.pretrain_lr)
    # the last batch of an epoch holds 674 mod 32 = 2 examples and jolts the EMA; use exact statistics (PreciseBN)
    recompute_bn_stats(model.eval(), list(iterate_batches(source.X_train, source.y_train, 32, shuffle=False)))
    return model, source, few_shot(data.subset(config.target_classes), config.shots, config.seed)


def transfer(pretrained: nn.Module, source, target, method: str, config: Config) -> dict:
    from impediments.monitor import Monitor
    from impediments.norm import freeze
    from impediments.train import evaluate

    model = copy.deepcopy(pretrained)
    reference = {n: (bn.running_mean.clone(), bn.running_var.clone()) for n, bn in bn_layers(model).items()}
    source_head = model.output
    torch.manual_seed(config.seed + 1)
    model.output = nn.Linear(model.output.in_features, target.num_classes)
    base = nn.Sequential(*[m for name, m in model.named_children() if name != "output"])
    if method == "keras_freeze":
        freeze(base)
    elif method == "naive_freeze":
        for p in base.parameters():
            p.requires_grad_(False)
    elif method != "finetune":
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    probe = DriftProbe(model, reference)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    with Monitor(model, optimizer=opt) as mon:     # what the monitor (and the doctor) see of the base's BNs
        h = train(model, target, seed=config.seed, steps=config.steps, batch_size=config.batch_size, optimizer=opt,
                  eval_every=max(config.steps // 10, 1), callbacks=[probe])
    bn_stats = list(mon.stats().batchnorm.values())
    drift, var_change = running_stat_drift(model, reference)
    model.output = source_head   # the old head on the (supposedly frozen) base: is the source task intact?
    return {"test_acc": h.test_acc, "eval_steps": h.eval_steps, "drift": probe.drift, "final_acc": h.test_acc[-1],
            "drift_final": drift, "var_change_final": var_change,
            "monitor_running_fraction": sum(b.running_stats_forwards_in_training for b in bn_stats)
            / max(sum(b.training_forwards for b in bn_stats), 1),
            "monitor_frozen": sum(b.frozen for b in bn_stats) / max(len(bn_stats), 1),
            "source_acc_after": evaluate(model, source.X_test, source.y_test)[1]}


def run(config: Config) -> Result:
    from impediments.train import evaluate

    model, source, target = pretrain(config)
    source_acc = evaluate(model, source.X_test, source.y_test)[1]
    runs = {m: transfer(model, source, target, m, config) for m in METHODS}
    steps = runs[METHODS[0]]["eval_steps"]
    for r in runs.values():
        r.pop("eval_steps")
    return Result(source_acc=source_acc, runs=runs, eval_steps=steps, shots=config.shots)


def plot(result: Result):
    from impediments.plots.part2 import plot_frozen_bn_transfer

    return plot_frozen_bn_transfer(result)


def claims(result: Result) -> list[Claim]:
    a, b, c = (result.runs[m] for m in METHODS)
    return [
        claim("With Keras semantics (impediments.norm.freeze) a frozen BatchNorm runs in inference mode while "
              "the head trains: its running statistics do not move at all.", SOURCE,
              {"drift_keras": a["drift_final"], "var_change_keras": a["var_change_final"]},
              "abs(drift_keras) <= 0 and abs(var_change_keras) <= 0",
              labels={"drift_keras": "Keras-style freeze: running-mean shift (running-σ units)",
                      "var_change_keras": "Keras-style freeze: mean |log| running-variance ratio"}),
        claim("With a naive PyTorch freeze (requires_grad=False, BN left in training mode) the running statistics "
              "drift toward the target data (the module states no size; measured: mean shift in running-σ units "
              "and mean |log| variance ratio per channel, next to fine-tuning everything).", SOURCE,
              {"drift_naive": b["drift_final"], "var_change_naive": b["var_change_final"],
               "drift_finetune": c["drift_final"], "var_change_finetune": c["var_change_final"]},
              "drift_naive > 0 and var_change_naive > 0",
              labels={"drift_naive": "naive freeze: running-mean shift (running-σ units)",
                      "var_change_naive": "naive freeze: mean |log| running-variance ratio",
                      "drift_finetune": "fine-tuning: running-mean shift (running-σ units)",
                      "var_change_finetune": "fine-tuning: mean |log| running-variance ratio"}),
        claim("A frozen base must stay the pretrained network. With Keras-style freezing the source task (old head "
              "on the base) keeps exactly its accuracy; with the naive freeze only the drifted running statistics "
              "change the base, and the source accuracy is reported.", SOURCE,
              {"source_acc": result.source_acc, "source_acc_after_keras": a["source_acc_after"],
               "source_acc_after_naive": b["source_acc_after"]},
              "abs(source_acc_after_keras - source_acc) <= 0",
              labels={"source_acc": "source-task test accuracy before transfer",
                      "source_acc_after_keras": "source-task accuracy after Keras-style transfer",
                      "source_acc_after_naive": "source-task accuracy after naive transfer"}),
        claim("The monitor sees the difference (impediments.watch during transfer): with Keras-style "
              "freezing every training-mode forward of the base's BNs used running statistics and every BN is "
              "reported frozen; with the naive freeze and with fine-tuning none did.", "impediments.monitor",
              {"running_fraction_keras": a["monitor_running_fraction"], "frozen_keras": a["monitor_frozen"],
               "running_fraction_naive": b["monitor_running_fraction"], "frozen_naive": b["monitor_frozen"],
               "running_fraction_finetune": c["monitor_running_fraction"]},
              "running_fraction_keras >= 1 and frozen_keras >= 1 and running_fraction_naive <= 0 "
              "and frozen_naive <= 0 and running_fraction_finetune <= 0",
              labels={"running_fraction_keras": "Keras-style: fraction of BN forwards on running statistics",
                      "frozen_keras": "Keras-style: fraction of BNs reported frozen",
                      "running_fraction_naive": "naive: fraction of BN forwards on running statistics",
                      "frozen_naive": "naive: fraction of BNs reported frozen",
                      "running_fraction_finetune": "fine-tuning: fraction of BN forwards on running statistics"}),
        claim(f"The pretrained base transfers: a new head on a frozen base ({result.shots} examples per target "
              "class) beats chance (0.2) by far.", SOURCE,
              {"acc_keras": a["final_acc"], "source_acc": result.source_acc}, "acc_keras >= 0.5",
              labels={"acc_keras": "target test accuracy, Keras-style freeze",
                      "source_acc": "source-task test accuracy"}),
        claim("Measured, not asserted by the module: target test accuracy of the three ways. Checked only that "
              "Keras-style freezing is not worse than the naive freeze by more than 0.05 (at this small scale the "
              "drift to target statistics can help or hurt; see the table).", SOURCE,
              {"acc_keras": a["final_acc"], "acc_naive": b["final_acc"], "acc_finetune": c["final_acc"]},
              "acc_keras >= acc_naive - 0.05",
              labels={"acc_keras": "target test accuracy, Keras-style freeze",
                      "acc_naive": "target test accuracy, naive freeze",
                      "acc_finetune": "target test accuracy, fine-tuning everything"},
              inconclusive_reason="with a few examples per target class the two freezes' accuracies differ by a "
              "few points either way from seed to seed; the module makes no claim about which is more accurate"),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[LABELS[m], r["drift_final"], r["var_change_final"], r["final_acc"], r["source_acc_after"]]
            for m, r in result.runs.items()]
    return [Table(f"transfer to digits 5–9 with {result.shots} examples per class "
                  f"(source test accuracy {result.source_acc:.3f})",
                  ["method", "running-mean drift (σ units)", "mean |log var ratio|", "target test acc",
                   "source test acc after (old head)"], rows)]

