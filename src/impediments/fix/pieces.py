"""The training setup a fix trial runs: a :class:`~impediments.train.setup.Setup` with a validation split.

A remedy never edits these in place: it returns a new :class:`Pieces` whose
factories wrap the old ones (``dataclasses.replace``), so the user's model,
tensors and optimizer are never touched and every trial starts from a fresh
build under the same seed.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from impediments.doctor.checkup import default_loss
from impediments.train.setup import Setup, default_optimizer

#: The validation split held out from a bare ``(X, y)`` (seeded, the same for every trial).
VAL_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True, kw_only=True)
class Pieces(Setup):
    """A training setup (:class:`~impediments.train.setup.Setup`: model factory, data, optimizer factory, loss,
    budget and the loop's parts) with what a trial adds: a validation split and modes.

    Attributes:
        X_val, y_val: validation inputs and targets (the dataset's held-out split, or
            :data:`VAL_FRACTION` of ``(X, y)`` held out with seed :data:`SPLIT_SEED`).
        modes: ``model -> context manager`` factories entered (in order) around training and evaluation:
            a remedy that changes what a line of the user's code does (a ``TorchFunctionMode`` that
            neutralises a ``.detach()`` or guards an op) without editing that code.
    """

    X_val: torch.Tensor
    y_val: torch.Tensor
    modes: tuple = ()

    @property
    def classification(self) -> bool:
        """Integer targets: the metric is validation accuracy (else validation loss)."""
        return self.y.dtype in (torch.int64, torch.int32)


def hold_out(X: torch.Tensor, y: torch.Tensor, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED):
    """``(X_train, y_train, X_val, y_val)``: a seeded random ``fraction`` of ``(X, y)`` held out.

    Rows whose input holds a NaN/Inf always stay in the training split: a validation row that cannot be
    scored tells nothing about the model, while in training it is what the doctor has to see (and what
    a remedy for ``non_finite`` inputs has to remove). With every row finite the split is the plain
    seeded one.

    Raises:
        ValueError: fewer than 2 examples, or ``fraction`` not in (0, 1).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    n = len(X)
    if n < 2 or len(y) != n:
        raise ValueError(f"need at least 2 examples with as many targets to hold out a validation split; "
                         f"got X with {n} and y with {len(y)}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, int(round(n * fraction)))
    finite = torch.isfinite(X).reshape(n, -1).all(1) if X.is_floating_point() else torch.ones(n, dtype=torch.bool)
    candidates = order[finite[order]]
    if len(candidates) < 1:
        candidates = order
    val = candidates[:k]
    train = order[~torch.isin(order, val)]
    return X[train], y[train], X[val], y[val]


def split_data(data):
    """``(X, y, X_val, y_val)`` from a dataset name, a :class:`~impediments.data.Dataset`, ``(X, y)`` or
    ``(X, y, X_val, y_val)``.

    Raises:
        ValueError: for any other value (the accepted forms are named).
    """
    if isinstance(data, str):
        from impediments.data import load_dataset

        data = load_dataset(data)
    if hasattr(data, "X_train") and hasattr(data, "X_test"):
        return data.X_train, data.y_train, data.X_test, data.y_test
    if isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data):
        if len(data) == 2:
            return hold_out(*data)
        if len(data) == 4:
            return tuple(data)
    raise ValueError(f"data must be a dataset name, a Dataset, (X, y) or (X, y, X_val, y_val) of tensors; "
                     f"got {type(data).__name__}")


class ModelCopies:
    """``() -> deepcopy(model)``: a model factory over a module the user passed (never trained itself)."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model)

    def __call__(self) -> nn.Module:
        return copy.deepcopy(self.model)


def make_pieces(model, data, *, optimizer=None, loss_fn=None, steps: int = 100, batch_size: int = 64,
                prepare=None, train_step=None, batches=None, scheduler=None) -> Pieces:
    """:class:`Pieces` from what a user has in hand.

    Args:
        model: an ``nn.Module`` (copied; the original is never trained) or a ``() -> nn.Module`` factory.
        data: see :func:`split_data`.
        optimizer: ``params -> Optimizer`` (default SGD lr 0.1).
        loss_fn: ``(output, target) -> loss`` (default cross-entropy for integer targets, else MSE).
        steps, batch_size: the training budget of every trial.
        prepare: ``model -> None`` run after ``model.train()``.
        train_step, batches, scheduler: the loop's own parts, as :class:`Pieces` ``step_fn``,
            ``batches_fn`` and ``scheduler_fn`` (a spec's ``train_step``, ``batches``, ``scheduler``).

    Raises:
        ValueError: a non-positive ``steps``/``batch_size``, a model that is neither, an optimizer instance
            instead of a factory, or bad data.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(model, nn.Module):
        model_fn = ModelCopies(model)
    elif callable(model):
        model_fn = model
    else:
        raise ValueError(f"model must be an nn.Module or a () -> nn.Module factory, got {type(model).__name__}")
    for name, value in (("optimizer", optimizer), ("loss_fn", loss_fn), ("prepare", prepare)):
        if value is not None and not callable(value):
            hint = " (pass a factory, e.g. lambda p: torch.optim.SGD(p, lr=0.1))" if name == "optimizer" else ""
            raise ValueError(f"{name} must be callable, got {type(value).__name__}{hint}")
    split = split_data(data)
    setup = Setup(model_fn=model_fn, X=split[0], y=split[1], opt_fn=optimizer or default_optimizer,
                  loss_fn=loss_fn or default_loss, steps=steps, batch_size=batch_size, prepare=prepare,
                  step_fn=train_step, batches_fn=batches, scheduler_fn=scheduler)
    return pieces_of(setup, split)


def pieces_of(setup: Setup, data=None) -> Pieces:
    """``setup`` with a validation split: ``data``'s (see :func:`split_data`), or by default held out of
    ``(setup.X, setup.y)``; the setup trains on the rest."""
    X, y, X_val, y_val = split_data(data if data is not None else (setup.X, setup.y))
    fields = {f.name: getattr(setup, f.name) for f in dataclasses.fields(Setup)}
    return Pieces(**{**fields, "X": X, "y": y, "batch_size": min(setup.batch_size, len(X))}, X_val=X_val,
                  y_val=y_val)
