"""Shared pieces of the real-bug corpus: the program an entry builds, offline data, and the training run.

Every entry module of ``benchmarks/realbugs/`` (and ``heldout/``) defines

* ``META``: where the bug comes from (``source``), its licence note (``licence``), the published root-cause
  labels in DeepFD's taxonomy (``labels``), the doctor codes that would name the root cause (``expected``: a
  list of ``{"code": ..., "new": bool}``; ``new`` marks a code the doctor does not have yet, named after
  issue 24), what the reproduction gate compares (``gate``), and one sentence each on the bug and the fix;
* ``build(seed, fixed) -> Program``: the buggy (``fixed=False``) or fixed program, ready to train.

These are our own PyTorch ports written from the bug descriptions, at a scale that trains in a few seconds
on one CPU core; none copies code from the sources.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

#: the root-cause labels an entry may carry (DeepFD's taxonomy, with the loop bugs TrainCheck adds)
LABELS = ("activation", "loss", "learning_rate", "optimizer", "preprocessing_inputs", "preprocessing_targets",
          "init", "layers", "epochs", "batch_size", "loop_api_misuse", "frozen_parameters", "data_labels")
#: the fields every META carries
META_FIELDS = ("source", "licence", "labels", "expected", "gate", "bug", "fix")
GATES = ("accuracy", "mse", "loss")


@dataclass
class Program:
    """One training program: everything the scorer needs to train it and to judge the result.

    Attributes:
        model: the network, freshly initialized.
        optimizer: an optimizer over (some of) its parameters.
        loss_fn: ``loss_fn(output, targets) -> scalar tensor`` as the program computes its loss.
        X, y: the training inputs and targets.
        steps: optimizer steps to train.
        batch_size: mini-batch size; ``None`` trains on the full data at every step (full-batch training).
        score: ``score(model) -> float``, higher is better (accuracy, or minus the MSE in the targets'
            original units), measured in eval mode on ``X_eval`` / ``y_eval`` by the entry's own rule.
        step_fn: ``step_fn(program, xb, yb, step) -> loss`` replaces :func:`default_step` (loop bugs).
        seed: the seed the program was built with (it also seeds the batch order).
        scheduler: a learning-rate scheduler the entry's ``step_fn`` steps, if the program has one.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    X: torch.Tensor
    y: torch.Tensor
    steps: int
    batch_size: int | None
    score: Callable[[nn.Module], float]
    step_fn: Callable | None = None
    seed: int = 0
    scheduler: object | None = None


def default_step(prog: Program, xb: torch.Tensor, yb: torch.Tensor, step: int) -> torch.Tensor:
    """The canonical step: clear, forward, loss, backward, step."""
    prog.optimizer.zero_grad(set_to_none=True)
    loss = prog.loss_fn(prog.model(xb), yb)
    loss.backward()
    prog.optimizer.step()
    return loss


def batches(prog: Program):
    """Yield ``(xb, yb)`` forever: reshuffled epochs seeded by ``prog.seed``, or the full data every step."""
    n = len(prog.X)
    if prog.batch_size is None or prog.batch_size >= n:
        while True:
            yield prog.X, prog.y
    gen = torch.Generator().manual_seed(10_000 + prog.seed)
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - prog.batch_size + 1, prog.batch_size):
            idx = order[start:start + prog.batch_size]
            yield prog.X[idx], prog.y[idx]


def train(prog: Program, monitor=None, steps: int | None = None) -> dict:
    """Train ``prog`` for ``steps`` (default ``prog.steps``); with ``monitor``, record every loss in it.

    Stops early, after recording it, at a non-finite loss (as a user would see NaN and stop).

    Returns:
        ``{"losses": [...], "seconds": wall time of the loop, "finite": bool}``.
    """
    steps = prog.steps if steps is None else steps
    step_fn = prog.step_fn or default_step
    data = batches(prog)
    prog.model.train()
    losses, finite = [], True
    start = time.perf_counter()
    for step in range(steps):
        xb, yb = next(data)
        loss = step_fn(prog, xb, yb, step)
        if monitor is not None:
            monitor.record_loss(loss)
        value = float(loss.detach())
        losses.append(value)
        if not math.isfinite(value):
            finite = False
            break
    return {"losses": losses, "seconds": time.perf_counter() - start, "finite": finite}


def evaluate(prog: Program) -> float:
    """``prog.score(model)`` in eval mode without gradients; a non-finite score counts as minus infinity."""
    was_training = prog.model.training
    prog.model.eval()
    try:
        with torch.no_grad():
            value = float(prog.score(prog.model))
    finally:
        prog.model.train(was_training)
    return value if math.isfinite(value) else -math.inf


# ------------------------------------------------------------------------------------------------ scores
def accuracy_score(X: torch.Tensor, labels: torch.Tensor, decide: Callable | None = None) -> Callable:
    """Accuracy on ``(X, labels)``; ``decide(output) -> predicted labels`` (default argmax over dim 1)."""
    def score(model):
        out = model(X)
        pred = decide(out) if decide is not None else out.argmax(dim=1)
        return (pred.reshape(-1) == labels.reshape(-1)).float().mean().item()
    return score


def threshold(at: float = 0.5) -> Callable:
    """Binary decision from one output per example: ``output > at``."""
    return lambda out: (out.reshape(len(out), -1)[:, 0] > at).long()


def neg_mse_score(X: torch.Tensor, targets: torch.Tensor, unscale: Callable | None = None) -> Callable:
    """Minus the mean squared error on ``(X, targets)``, in the targets' original units.

    ``unscale(output)`` maps the model's output back to those units (for a program that scaled its targets).
    """
    def score(model):
        out = model(X)
        if unscale is not None:
            out = unscale(out)
        return -((out.reshape(targets.shape) - targets) ** 2).mean().item()
    return score


# ------------------------------------------------------------------------------------------------ data
def _split(X: np.ndarray, y: np.ndarray, seed: int, eval_fraction: float):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_eval = int(round(len(X) * eval_fraction))
    ev, tr = order[:n_eval], order[n_eval:]
    return X[tr], y[tr], X[ev], y[ev]


def as_tensors(*arrays, label_dtype_at: tuple[int, ...] = ()) -> list[torch.Tensor]:
    """float32 tensors (int64 at the positions in ``label_dtype_at``)."""
    return [torch.as_tensor(np.asarray(a), dtype=torch.int64 if i in label_dtype_at else torch.float32)
            for i, a in enumerate(arrays)]


def standardize(X_train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Standardize with the training set's per-feature mean and std (std 0 -> 1)."""
    mean, std = X_train.mean(0, keepdim=True), X_train.std(0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(t - mean) / std for t in (X_train, *others)]


def digits(seed: int, *, eval_fraction: float = 0.25, classes: tuple[int, ...] | None = None):
    """sklearn digits (the offline stand-in for MNIST): raw pixels 0..16, labels 0..9 (or a subset, relabelled).

    Returns:
        ``X_train, y_train, X_eval, y_eval`` as tensors (X float32, y int64).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target.astype(np.int64)
    if classes is not None:
        keep = np.isin(y, classes)
        X, y = X[keep], np.searchsorted(np.asarray(sorted(classes)), y[keep])
    return as_tensors(*_split(X, y, seed, eval_fraction), label_dtype_at=(1, 3))


def classification(seed: int, n: int, features: int, classes: int = 2, *, informative: int | None = None,
                   eval_fraction: float = 0.25):
    """sklearn ``make_classification`` as the deepmufl ports use it (inputs of unit scale, one cluster a class)."""
    from sklearn.datasets import make_classification

    informative = informative or min(features, max(2, classes))
    X, y = make_classification(n, features, n_informative=informative, n_redundant=0, n_classes=classes,
                               n_clusters_per_class=1, random_state=seed)
    X = X.astype(np.float32)
    return as_tensors(*_split(X, y.astype(np.int64), seed, eval_fraction), label_dtype_at=(1, 3))


def regression(seed: int, n: int, features: int, targets: int = 1, *, eval_fraction: float = 0.25,
               noise: float = 0.0, informative: int | None = None):
    """sklearn ``make_regression``: inputs N(0, 1), targets of std in the tens to hundreds (its raw scale)."""
    from sklearn.datasets import make_regression

    X, y = make_regression(n, features, n_targets=targets, n_informative=informative or features, noise=noise,
                           random_state=seed)
    y = y.reshape(n, targets).astype(np.float32)
    return as_tensors(*_split(X.astype(np.float32), y, seed, eval_fraction))


def sklearn_table(name: str, seed: int, eval_fraction: float = 0.3):
    """A bundled sklearn table (``iris`` or ``breast_cancer``), raw features."""
    from sklearn import datasets

    d = {"iris": datasets.load_iris, "breast_cancer": datasets.load_breast_cancer}[name]()
    return as_tensors(*_split(d.data.astype(np.float32), d.target.astype(np.int64), seed, eval_fraction),
                      label_dtype_at=(1, 3))


def keras_bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras's ``binary_crossentropy`` on probabilities: the output is clipped to [1e-7, 1 - 1e-7] first.

    Ports of Keras programs that put BCE on an output that is not a probability (ReLU, linear, softmax)
    need this: PyTorch's ``BCELoss`` would raise on values outside [0, 1] instead of training silently.
    """
    p = output.reshape(target.shape).clamp(1e-7, 1 - 1e-7)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()


def onehot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """float one-hot rows of ``labels``."""
    return torch.nn.functional.one_hot(labels, classes).float()


# ------------------------------------------------------------------------------------------------ the gate
def gate(module, seeds=(0, 1, 2, 3, 4)) -> dict:
    """The reproduction gate: the fixed program must score higher than the buggy one at every seed.

    Returns:
        ``{"passed": bool, "buggy": [...], "fixed": [...], "seconds": ...}`` with one score per seed.
    """
    start = time.perf_counter()
    scores = {"buggy": [], "fixed": []}
    for seed in seeds:
        for version in ("buggy", "fixed"):
            prog = module.build(seed, fixed=version == "fixed")
            train(prog)
            scores[version].append(evaluate(prog))
    passed = all(f > b for b, f in zip(scores["buggy"], scores["fixed"]))
    return {"passed": passed, **scores, "seconds": time.perf_counter() - start}
