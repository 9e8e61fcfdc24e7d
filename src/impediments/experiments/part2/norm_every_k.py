"""Normalization after every layer versus every k-th layer: time per step against accuracy.

The module: "In practice, to mitigate the cost to training and inference,
normalization layers are only applied every few layers, not for every
layer." An 8-layer ReLU MLP on digits with BatchNorm after every layer
(k = 1), every 2nd (k = 2), every 4th (k = 4) hidden layer, or none. We
measure the cost of one training step twice: wall-clock time (the minimum
over repeated blocks of steps; noisy on a shared machine, so reported, not
asserted) and, deterministically, the tensor operations dispatched and the
tensor elements they write (BatchNorm is memory-bound, so elements written
is the relevant work). Test accuracy is measured after a fixed number of steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Layer and Group Normalization"
SOURCE = "seed: Batch Normalization (Final words)"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 8
    every: tuple[int, ...] = (1, 2, 4, 0)     # 0: no normalization
    lr: float = 0.1
    steps: int = 300
    batch_size: int = 64
    timing_steps: int = 10                   # steps per timed block
    timing_repeats: int = 3

    QUICK = dict(steps=200)
    FULL = dict(depth=16, every=(1, 2, 4, 8, 0), steps=500, timing_repeats=5)


@dataclass
class Result:
    every: list
    norm_layers: list            # number of BN layers per setting
    ms_per_step: list            # minimum over repeats, per setting
    ops_per_step: list           # aten operations dispatched in one training step, per setting
    elements_per_step: list      # tensor elements written by them, per setting
    test_acc: list               # after config.steps steps, per setting
    depth: int
    steps: int


def build(config: Config, data, every: int) -> nn.Sequential:
    """``depth``-layer ReLU MLP with BN (before the activation) in hidden layers k, 2k, ... (none for 0)."""
    from impediments.models import mlp

    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="relu", norm="batch")
    for k in range(1, config.depth + 1):
        if every == 0 or k % every:
            model.get_submodule(f"hidden{k}").norm = nn.Identity()
    return model


def time_per_step(model: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int, repeats: int) -> float:
    """Milliseconds per SGD step (forward, backward, update), minimum over ``repeats`` blocks of ``steps``."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()

    def block() -> None:
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    block()    # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        block()
        best = min(best, time.perf_counter() - t)
    return 1000 * best / steps


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched and the elements of the tensors they return."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self.elements += sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


def work_per_step(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(operations, elements written) of one SGD step: forward, backward and update."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, foreach=False)
    model.train()
    with OpCounter() as counter:
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return counter.ops, counter.elements


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.norm import is_batch_norm

    data = load_dataset("digits", seed=config.seed)
    X, y = data.X_train[: config.batch_size], data.y_train[: config.batch_size]
    counts, ms, ops, elements, acc = [], [], [], [], []
    for every in config.every:
        model = build(config, data, every)
        counts.append(sum(is_batch_norm(m) for m in model.modules()))
        ms.append(time_per_step(build(config, data, every), X, y, config.timing_steps, config.timing_repeats))
        o, e = work_per_step(build(config, data, every), X, y)
        ops.append(o)
        elements.append(e)
        h = train(model, data, seed=config.seed, steps=config.steps, batch_size=config.batch_size, lr=config.lr)
        acc.append(h.test_acc[-1])
    return Result(every=list(config.every), norm_layers=counts, ms_per_step=ms, ops_per_step=ops,
                  elements_per_step=elements, test_acc=acc, depth=config.depth,
                  steps=config.steps)


def plot(result: Result):
    from impediments.plots.part2 import plot_norm_every_k

    return plot_norm_every_k(result)


def _key(every: int) -> str:
    return "none" if every == 0 else f"every_{every}"


def _label(every: int) -> str:
    return "no norm" if every == 0 else ("every layer" if every == 1 else f"every {_ordinal(every)} layer")


def claims(result: Result) -> list[Claim]:
    i_all, i_none = result.every.index(1), result.every.index(0)
    sparse = [i for i, e in enumerate(result.every) if e > 1]
    i_sparse = max(sparse, key=lambda i: result.every[i])
    k = result.every[i_sparse]
    acc = result.test_acc
    order = np.argsort(result.norm_layers, kind="stable")
    ops, elements = np.asarray(result.ops_per_step)[order], np.asarray(result.elements_per_step)[order]
    return [
        claim("Normalization layers cost work: the operations and the elements written per training step "
              "grow strictly with the number of BN layers (every layer > every few layers > none). Wall-clock "
              "milliseconds per step are reported, not asserted (shared 2-core machine).", SOURCE,
              {"min_ops_increase": float(np.min(np.diff(ops))),
               "min_elements_increase": float(np.min(np.diff(elements))),
               **{f"ms_{_key(e)}": v for e, v in zip(result.every, result.ms_per_step)}},
              "min_ops_increase > 0 and min_elements_increase > 0",
              labels={"min_ops_increase": "fewest extra operations per step for more BN layers",
                      "min_elements_increase": "fewest extra elements written per step for more BN layers",
                      **{f"ms_{_key(e)}": f"ms per step, {_label(e)}" for e in result.every}}),
        claim(f"Normalizing every few layers keeps the benefit: with BN only every {_ordinal(k)} layer the "
              f"{result.depth}-layer network is more accurate after {result.steps} steps than without "
              "normalization.", SOURCE,
              {f"acc_every_{k}": acc[i_sparse], "acc_none": acc[i_none], "acc_every_layer": acc[i_all]},
              f"acc_every_{k} > acc_none",
              labels={f"acc_every_{k}": f"test accuracy, BN every {_ordinal(k)} layer",
                      "acc_none": "test accuracy, no BN", "acc_every_layer": "test accuracy, BN every layer"}),
    ]


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def tables(result: Result) -> list[Table]:
    rows = [[_label(e), n, o, el, t, a] for e, n, o, el, t, a in zip(
        result.every, result.norm_layers, result.ops_per_step, result.elements_per_step, result.ms_per_step,
        result.test_acc)]
    return [Table(f"{result.depth}-layer ReLU MLP on digits, {result.steps} SGD steps",
                  ["normalization", "BN layers", "ops per step", "elements written per step", "ms per step (min)",
                   "test acc"], rows)]

