"""One trial: build the (remedied) setup under the seed, train it under the monitor, evaluate, diagnose.

:func:`run_trial` is a plain function of picklable arguments, so trials run in
worker processes: ``source`` is a picklable ``() -> Pieces`` (a spec loader, or
pieces whose factories pickle), the remedies are named, and the result is a
:class:`Trial` of plain numbers and lists.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field

import torch

from impediments.fix.pieces import Pieces
from impediments.fix.remedies import REMEDIES, Context, NotApplicable, apply_all
from impediments.train.loop import build, run_steps

#: the parts of a finding a trial keeps (remedies read ``where`` and ``evidence``).
FINDING_KEYS = ("code", "severity", "where", "evidence", "caused_by")
#: training losses averaged for the final training loss.
FINAL_LOSS_STEPS = 10


@dataclass
class Trial:
    """A finished trial.

    Attributes:
        remedies: the remedies applied (empty for the baseline).
        seed: the seed of model init, batching and dropout.
        findings: ``{"code", "severity", "where", "evidence", "caused_by"}`` of every finding the doctor reported.
        steps_run: steps trained (fewer than planned when the loss became non-finite).
        steps: steps planned.
        train_loss: mean training loss of the last :data:`FINAL_LOSS_STEPS` steps.
        val_loss, val_acc: on the validation split after training (``val_acc`` None for non-integer targets).
        curve: the training loss at every step.
        wall_s: seconds for build, training, evaluation and diagnosis.
        changes: ``{"remedy", "code", "note"}`` per applied remedy.
        error: why the trial could not run (remedy not applicable, or the exception raised); None if it ran.
        process: the id of the process that ran it (a worker's with ``jobs > 1``).
    """

    remedies: tuple[str, ...]
    seed: int
    findings: list[dict] = field(default_factory=list)
    steps_run: int = 0
    steps: int = 0
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    val_acc: float | None = None
    curve: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    changes: list[dict] = field(default_factory=list)
    error: str | None = None
    process: int = 0

    @property
    def flagged(self) -> set[str]:
        """Codes reported at warning or error severity."""
        return {f["code"] for f in self.findings if f["severity"] in ("warning", "error")}

    @property
    def metric(self) -> float:
        """Validation accuracy (higher is better) or, for non-integer targets, minus the validation loss."""
        if self.val_acc is not None:
            return self.val_acc
        return -self.val_loss if math.isfinite(self.val_loss) else float("-inf")


def _evaluate(model, pieces: Pieces) -> tuple[float, float | None]:
    model.eval()
    with torch.no_grad():
        out = model(pieces.X_val.clone())      # an in-place first layer must not write into the caller's tensor
        loss = float(pieces.loss_fn(out, pieces.y_val))
    if not pieces.classification:
        return loss, None
    ok = torch.isfinite(out).all(1) & (out.argmax(1) == pieces.y_val)    # class axis 1: (N, C) or (N, C, T)
    return loss, float(ok.float().mean())


def _train(model, optimizer, pieces: Pieces, seed: int, thresholds):
    """Train under the monitor with the one training loop; the losses and the doctor's report."""
    from impediments.doctor import diagnose
    from impediments.monitor import Monitor

    with Monitor(model, optimizer=optimizer) as mon:
        curve = run_steps(pieces, model, optimizer, monitor=mon, seed=seed)
    return curve, diagnose(mon.stats(), thresholds)


def run_trial(source, remedy_names: tuple[str, ...], findings: tuple = (), seed: int = 0,
              thresholds: dict | None = None) -> Trial:
    """Build ``source()``, apply the named remedies, train, evaluate and diagnose; never raises for the setup.

    Args:
        source: picklable ``() -> Pieces``.
        remedy_names: keys of :data:`~impediments.fix.remedies.REMEDIES`.
        findings: the baseline's findings (``Finding.to_dict()``), which remedies may read.
        seed: seeds ``torch.manual_seed`` before the model is built and again before training (dropout),
            and the batch order.
        thresholds: the doctor's threshold overrides.
    """
    start = time.perf_counter()
    trial = Trial(tuple(remedy_names), seed, process=os.getpid())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pieces, changes = apply_all(source(), [REMEDIES[n] for n in remedy_names], Context(tuple(findings), seed))
        trial.steps = pieces.steps
        trial.changes = [{"remedy": n, "code": c.code, "note": c.note}
                         for n, c in zip(sorted(remedy_names, key=_slot_rank), changes)]
        model, optimizer = build(pieces, seed)
        with contextlib.ExitStack() as modes:
            for make in pieces.modes:
                modes.enter_context(make(model))
            curve, report = _train(model, optimizer, pieces, seed, thresholds)
            trial.val_loss, trial.val_acc = _evaluate(model, pieces)
    except NotApplicable as exc:
        trial.error = f"not applicable: {exc}"
    except Exception as exc:  # a remedy that breaks the model is a result to show, not a crash
        trial.error = f"{type(exc).__name__}: {exc}"
    else:
        torch.set_num_threads(threads)
        trial.curve, trial.steps_run = curve, len(curve)
        tail = curve[-FINAL_LOSS_STEPS:]
        trial.train_loss = sum(tail) / len(tail) if tail else float("nan")
        trial.findings = [{k: v for k, v in f.to_dict().items() if k in FINDING_KEYS} for f in report.findings]
    torch.set_num_threads(threads)
    trial.wall_s = time.perf_counter() - start
    return trial


def _slot_rank(name: str) -> int:
    from impediments.fix.remedies import SLOT_ORDER

    return SLOT_ORDER.index(REMEDIES[name].slot)
