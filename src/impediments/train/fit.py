"""``fit``: deterministic classification training with evaluation, on the loop of :mod:`impediments.train.loop`."""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable

import torch
from torch import nn

from impediments.data.batching import infinite_batches
from impediments.data.datasets import Dataset
from impediments.data.validate import check_batch_size
from impediments.train.callbacks import call
from impediments.train.history import History
from impediments.train.loop import iterate_steps
from impediments.train.setup import Setup

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda p, lr, momentum, wd: torch.optim.SGD(p, lr=lr, momentum=momentum, weight_decay=wd),
    "adam": lambda p, lr, momentum, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd),
    "adamw": lambda p, lr, momentum, wd: torch.optim.AdamW(p, lr=lr, weight_decay=wd),
}


def make_optimizer(name: str | torch.optim.Optimizer, params, *, lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer by name (``sgd``, ``adam``, ``adamw``), or pass one through."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return OPTIMIZERS[name](params, lr, momentum, weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024,
             loss_fn: Callable = nn.functional.cross_entropy) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    try:
        total, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
        for start in range(0, len(X), batch_size):
            out = model(X[start : start + batch_size])
            target = y[start : start + batch_size]
            total += loss_fn(out, target, reduction="sum").double()
            correct += (out.argmax(1) == target).sum()
        n = max(len(X), 1)
        return float(total) / n, float(correct) / n
    finally:
        model.train(was_training)


def fit(
    model: nn.Module, data: Dataset, *, steps: int | None = None, epochs: int | None = None, batch_size: int = 64,
    optimizer: str | torch.optim.Optimizer = "sgd", lr: float = 0.1, momentum: float = 0.0,
    weight_decay: float = 0.0, seed: int = 0, callbacks: Iterable = (), progress: bool = True,
    eval_every: int | None = None, loss_fn: Callable = nn.functional.cross_entropy,
) -> History:
    """Train ``model`` on ``data`` with mini-batch gradient descent.

    Exactly one of ``steps`` or ``epochs`` sets the budget (``epochs=1`` when
    neither is given). Evaluation runs before training (step 0), at the end
    of every epoch, every ``eval_every`` steps if given, and at the end.

    Args:
        model: any module mapping a batch of ``data.X_train`` to logits.
        data: a :class:`~impediments.data.Dataset`.
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"`` or an optimizer instance.
        seed: seeds the global torch RNG (dropout) and the batch order, so
            two runs from the same initial weights give identical histories.
        callbacks: objects with optional ``on_step_end(step, loss)`` and
            ``on_eval(step, metrics)`` methods.
        progress: show a progress bar when stderr is a TTY.

    Returns:
        A :class:`History`. A KeyboardInterrupt ends training cleanly and
        returns the history so far with ``interrupted=True``. A NaN/Inf loss
        stops training with ``diverged=True``.

    Raises:
        ValueError: for a bad budget, batch size, optimizer name or lr.
    """
    if steps is not None and epochs is not None:
        raise ValueError("give either steps or epochs, not both")
    for key, value in (("steps", steps), ("epochs", epochs), ("eval_every", eval_every)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    n = len(data.X_train)
    check_batch_size(batch_size, n)
    per_epoch = math.ceil(n / batch_size)
    total = steps if steps is not None else (epochs or 1) * per_epoch
    torch.manual_seed(seed)
    opt = make_optimizer(optimizer, model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history, callbacks = History(), list(callbacks)
    bar = _progress(total) if progress and sys.stderr.isatty() else None

    def run_eval(step: int) -> None:
        tr_loss, tr_acc = evaluate(model, data.X_train, data.y_train, loss_fn=loss_fn)
        te_loss, te_acc = evaluate(model, data.X_test, data.y_test, loss_fn=loss_fn)
        history.eval_steps.append(step)
        for key, value in (("train_loss", tr_loss), ("train_acc", tr_acc), ("test_loss", te_loss),
                           ("test_acc", te_acc)):
            getattr(history, key).append(value)
        call(callbacks, "on_eval", step, {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                                         "test_acc": te_acc})

    pending: list[torch.Tensor] = []  # losses not yet copied to the host (no per-step sync)

    def flush() -> None:
        if pending:
            history.step_loss.extend(torch.stack(pending).tolist())
            pending.clear()

    setup = Setup(model_fn=lambda: model, X=data.X_train, y=data.y_train, loss_fn=loss_fn, opt_fn=lambda _: opt,
                  steps=total, batch_size=batch_size, batches_fn=_epochs)
    run_eval(0)
    model.train()
    try:
        for step, loss in enumerate(iterate_steps(setup, model, opt, seed=seed), start=1):
            pending.append(loss)
            call(callbacks, "on_step_end", step, loss)
            if bar is not None:
                bar[0].update(bar[1], advance=1)
            if step % per_epoch == 0 or (eval_every and step % eval_every == 0) or step == total:
                flush()
                if not math.isfinite(history.step_loss[-1]):
                    history.diverged = True
                    run_eval(step)
                    return history
                run_eval(step)
    except KeyboardInterrupt:
        history.interrupted = True
        flush()
    finally:
        if bar is not None:
            bar[0].stop()
    return history


def _epochs(X: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int):
    """Endless reshuffled epochs, the last partial batch kept (every example seen once per epoch)."""
    return infinite_batches(X, y, batch_size, seed=seed, drop_last=False)


def _progress(total: int):
    from rich.progress import Progress

    p = Progress(transient=True)
    task = p.add_task("training", total=total)
    p.start()
    return p, task
