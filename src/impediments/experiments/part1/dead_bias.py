"""A large negative bias kills ReLU units, and dead units stay dead.

"If the layer learns a very large negative bias, the pre-activation value
will likely be a large negative value, placing [it] in a region of the
activation function with zero gradients, resulting in no update to the
bias. Hence, the negative bias with no updates will persist across training
steps" (module, "Dead activation functions"). A ReLU MLP on digits with He
weights starts once with all hidden biases 0 and once with all hidden biases
at a large negative value; we follow the fraction of dead units (never
active on any training example) through training, and check that the
biases of dead units never change.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import numpy as np

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Activations: dead units"
SOURCE = "seed: Dead Activation functions"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 3
    biases: tuple[float, ...] = (0.0, -3.0)   # normal bias, large negative bias
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 32

    FULL = dict(width=256, depth=4, epochs=25)


@dataclass
class Result:
    runs: dict       # str(bias) -> {"dead_before"/"dead_after": {layer: fraction dead on the training set},
                     #   "dead_all": [before, after] over all hidden units, "never_active": {layer: fraction never
                     #   active on any training batch}, "window_end": [step], "window_dead": {layer: [fraction
                     #   inactive in each monitor window]}, "test_acc", "train_loss", "eval_steps",
                     #   "dead_bias_change": max |Δb| over never-active units}
    biases: list
    width: int


def dead_units(model: nn.Module, X: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Per activation module: a bool per unit, True when the unit's output is 0 on every row of ``X``.

    One no-grad forward pass under :class:`impediments.monitor.Monitor` (every step sampled), reading
    ``ActivationStats.dead_units``. The model is put in training mode for that pass (the monitor
    records training forwards; these models have no dropout or normalization) and restored after.
    """
    from impediments.monitor import Monitor

    was_training = model.training
    try:
        model.train()
        with Monitor(model, every=1, include=layers) as mon, torch.no_grad():
            model(X)
        acts = mon.stats().activations
    finally:
        model.train(was_training)
    out = {}
    for name in layers:
        dead = torch.zeros(acts[name].units, dtype=torch.bool)
        dead[list(acts[name].dead_units)] = True
        out[name] = dead
    return out


def train_one(config: Config, bias: float) -> dict:
    """Train from He weights and the given hidden bias under :class:`impediments.monitor.Monitor` (every step).

    Dead units on the whole training set are measured before and after training; during training the
    monitor's windows give the fraction of units inactive on each window's batches, and its
    ``dead_units`` the units never active on any training batch, whose biases must not have moved.
    """
    from impediments.data import load_dataset
    from impediments.models import mlp
    from impediments.monitor import Monitor

    data = load_dataset("digits", seed=config.seed)
    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="relu")
    linears = [f"hidden{k}.linear" for k in range(1, config.depth + 1)]
    acts = [f"hidden{k}.act" for k in range(1, config.depth + 1)]
    initialize_he(model, linears, bias, config.seed)
    start = {n: model.get_submodule(n).bias.detach().clone() for n in linears}
    before = dead_units(model, data.X_train, acts)
    with Monitor(model, every=1, include=acts) as mon:
        h = train(model, data, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size,
                  lr=config.lr)
    stats = mon.stats()
    after = dead_units(model, data.X_train, acts)
    change = 0.0
    for lin, act in zip(linears, acts):
        never = list(stats.activations[act].dead_units)
        if never:
            delta = (model.get_submodule(lin).bias.detach() - start[lin]).abs()[never]
            change = max(change, float(delta.max()))
    return {
        "dead_before": {a: float(before[a].float().mean()) for a in acts},
        "dead_after": {a: float(after[a].float().mean()) for a in acts},
        "dead_all": [float(torch.cat([d[a] for a in acts]).float().mean()) for d in (before, after)],
        "never_active": {a: len(stats.activations[a].dead_units) / stats.activations[a].units for a in acts},
        "window_end": [w.end_step for w in stats.windows],
        "window_dead": {a: [w.dead_fraction.get(a, float("nan")) for w in stats.windows] for a in acts},
        "test_acc": h.test_acc, "train_loss": h.train_loss, "eval_steps": h.eval_steps,
        "dead_bias_change": change,
    }


def initialize_he(model: nn.Module, linears: list[str], bias: float, seed: int) -> None:
    """He normal weights N(0, 2/fan_in) and a constant bias on the named Linear layers."""
    from impediments.init import initialize

    initialize(model, "he_normal", bias=bias, seed=seed, layers=linears)


def run(config: Config) -> Result:
    runs = {str(b): train_one(config, b) for b in config.biases}
    return Result(runs=runs, biases=list(config.biases), width=config.width)


def plot(result: Result):
    from impediments.plots.exp_dead_bias import plot_dead_bias

    return plot_dead_bias(result)


def claims(result: Result) -> list[Claim]:
    normal, negative = result.runs[str(result.biases[0])], result.runs[str(result.biases[-1])]
    labels = {"dead_negative_init": "dead fraction at init, large negative bias",
              "dead_negative_final": "dead fraction after training, large negative bias",
              "dead_normal_max": "largest dead fraction, normal bias"}
    return [
        claim(f"A large negative bias ({result.biases[-1]:g}) gives a dead fraction that stays high through "
              f"training, compared with a normal bias ({result.biases[0]:g}).", SOURCE,
              {"dead_negative_init": negative["dead_all"][0], "dead_negative_final": negative["dead_all"][-1],
               "dead_normal_max": max(normal["dead_all"])},
              "dead_negative_final >= 0.8 * dead_negative_init and dead_negative_final >= dead_normal_max + 0.2",
              labels=labels),
        claim("A dead unit gets a zero gradient, so its negative bias receives no update and persists: units "
              "never active on any training batch end with exactly their initial bias.", SOURCE,
              {"max_bias_change_of_never_active_units": negative["dead_bias_change"],
               "never_active_fraction": float(np.mean(list(negative["never_active"].values())))},
              "max_bias_change_of_never_active_units <= 0 and never_active_fraction > 0",
              labels={"max_bias_change_of_never_active_units": "largest bias change of never-active units",
                      "never_active_fraction": "fraction of units never active"}),
        claim("Dead units do not contribute to distinguishing between inputs: the network with the large "
              "negative bias learns far less.", SOURCE,
              {"acc_negative": negative["test_acc"][-1], "acc_normal": normal["test_acc"][-1]},
              "acc_negative <= acc_normal - 0.3",
              labels={"acc_negative": "test accuracy, large negative bias", "acc_normal": "test accuracy, normal bias"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = []
    for b in result.biases:
        r = result.runs[str(b)]
        for layer in r["dead_before"]:
            rows.append([f"{b:g}", layer, r["dead_before"][layer], r["dead_after"][layer], r["never_active"][layer]])
    return [Table("fraction of dead units (inactive on every training example)",
                  ["bias", "layer", "at init", "after training", "never active during training"], rows)]
