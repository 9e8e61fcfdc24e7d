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

from impediments.experiments.framework import Claim, Table, claim, seeded, train

NAME = "dead_bias"
DESCRIPTION = "large negative bias: ReLU units die at init and stay dead through training"
SECTION = "Activations: dead units"
SOURCE = "seed: Dead Activation functions"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    width: int = 64
    depth: int = 3
    biases: tuple[float, ...] = (0.0, -3.0)   # normal bias, large negative bias
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 32

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, width=256, depth=4, epochs=40)


@dataclass
class Result:
    steps: list
    runs: dict       # str(bias) -> {"dead": {layer: [fraction per evaluation]}, "dead_all": [...], "test_acc",
                     #   "train_loss", "dead_bias_change": max |Δb| over units dead at init and at the end}
    biases: list
    width: int


def dead_units(model: nn.Module, X: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Per activation module: a bool per unit, True when the unit's output is 0 on every row of ``X``.

    One no-grad forward pass under :func:`impediments.monitor.watch` (every step sampled), reading
    ``ActivationStats.dead_units``. The model is put in training mode for that pass (the monitor
    records training forwards; these models have no dropout or normalization) and restored after.
    """
    from impediments.monitor import watch

    was_training = model.training
    try:
        model.train()
        with watch(model, every=1, include=layers) as mon, torch.no_grad():
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


class DeadProbe:
    """Training callback: dead units of each activation layer at every evaluation."""

    def __init__(self, model: nn.Module, X: torch.Tensor, layers: list[str]) -> None:
        self.model, self.X, self.layers = model, X, layers
        self.history: list[dict[str, torch.Tensor]] = []

    def on_eval(self, step, metrics) -> None:
        self.history.append(dead_units(self.model, self.X, self.layers))


def train_one(config: Config, bias: float) -> dict:
    from impediments.data import load_dataset
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)
    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="relu")
    linears = [f"hidden{k}.linear" for k in range(1, config.depth + 1)]
    with torch.no_grad():
        for name in linears:
            nn.init.kaiming_normal_(model.get_submodule(name).weight, nonlinearity="relu")
            model.get_submodule(name).bias.fill_(bias)
    start = {n: model.get_submodule(n).bias.detach().clone() for n in linears}
    acts = [f"hidden{k}.act" for k in range(1, config.depth + 1)]
    probe = DeadProbe(model, data.X_train, acts)
    h = train(model, data, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
              callbacks=[probe])
    change = 0.0
    for lin, act in zip(linears, acts):
        always_dead = probe.history[0][act] & probe.history[-1][act]
        delta = (model.get_submodule(lin).bias.detach() - start[lin]).abs()[always_dead]
        change = max(change, float(delta.max()) if len(delta) else 0.0)
    return {
        "dead": {a: [float(d[a].float().mean()) for d in probe.history] for a in acts},
        "dead_all": [float(torch.cat([d[a] for a in acts]).float().mean()) for d in probe.history],
        "test_acc": h.test_acc, "train_loss": h.train_loss, "dead_bias_change": change, "steps": h.eval_steps,
    }


def run(config: Config) -> Result:
    runs = {str(b): train_one(config, b) for b in config.biases}
    steps = next(iter(runs.values())).pop("steps")
    for r in runs.values():
        r.pop("steps", None)
    return Result(steps=steps, runs=runs, biases=list(config.biases), width=config.width)


def plot(result: Result):
    from impediments.plots.exp_dead_bias import plot_dead_bias

    return plot_dead_bias(result)


def claims(result: Result) -> list[Claim]:
    normal, negative = result.runs[str(result.biases[0])], result.runs[str(result.biases[-1])]
    d0, d1 = negative["dead_all"][0], negative["dead_all"][-1]
    return [
        claim(f"A large negative bias ({result.biases[-1]:g}) gives a dead fraction that stays high through "
              f"training, compared with a normal bias ({result.biases[0]:g}).", SOURCE,
              {"dead_negative_init": d0, "dead_negative_final": d1, "dead_normal_max": max(normal["dead_all"])},
              "dead_negative_final >= 0.8 * dead_negative_init and dead_negative_final >= dead_normal_max + 0.2",
              d1 >= 0.8 * d0 and d1 >= max(normal["dead_all"]) + 0.2),
        claim("A dead unit gets a zero gradient, so its negative bias receives no update and persists.", SOURCE,
              {"max_bias_change_of_dead_units": negative["dead_bias_change"]},
              "max_bias_change_of_dead_units == 0", negative["dead_bias_change"] == 0.0),
        claim("Dead units do not contribute to distinguishing between inputs: the network with the large "
              "negative bias learns far less.", SOURCE,
              {"acc_negative": negative["test_acc"][-1], "acc_normal": normal["test_acc"][-1]},
              "acc_negative <= acc_normal - 0.3", negative["test_acc"][-1] <= normal["test_acc"][-1] - 0.3),
    ]


def tables(result: Result) -> list[Table]:
    rows = []
    for b in result.biases:
        r = result.runs[str(b)]
        for layer, frac in r["dead"].items():
            rows.append([f"{b:g}", layer, frac[0], frac[-1]])
    return [Table("fraction of dead units (never active on the training set)",
                  ["bias", "layer", "at init", "after training"], rows)]
