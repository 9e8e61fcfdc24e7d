"""One playground run: real PyTorch training of a configured MLP under the monitor.

A :class:`Run` owns its model, optimizer, batches and :class:`impediments.monitor.Monitor`
monitor; :meth:`Run.train_step` is one ordinary training step, and :meth:`Run.view` the page's
view of it: loss and test-accuracy curves, per-layer activation histograms of the latest
captured step, and the monitor's statistics with the doctor's findings. Everything it keeps is
bounded: the curve halves its resolution when full, the monitor's windows merge pairwise.
"""
from __future__ import annotations

import functools
import itertools
import math
import time

import torch
from torch import nn

from impediments.doctor import diagnose
from impediments.monitor import Monitor
from impediments.playground.build import build_model, build_optimizer, dataset
from impediments.playground.capture import ActivationCapture
from impediments.playground.config import PlaygroundConfig, to_fragment
from impediments.playground.remedies import remedy_options
from impediments.playground.snapshot import monitor_view
from impediments.train import Setup, build, evaluate, iterate_steps

#: the monitor samples every k-th step (statistics and findings follow training closely)
MONITOR_EVERY = 5
#: curve points kept before the curve halves its resolution
CURVE_POINTS = 400
#: test examples evaluated per update (the same fixed subset each time)
EVAL_EXAMPLES = 256
#: the doctor's findings are recomputed at most this often (seconds)
DIAGNOSE_EVERY_S = 0.4
_IDS = itertools.count(1)


class Curve:
    """Bounded (step, mean training loss, test accuracy) points: when full, every other point is dropped."""

    def __init__(self, capacity: int = CURVE_POINTS) -> None:
        self.capacity, self.stride = capacity, 1
        self.points: list[tuple[int, float | None, float | None]] = []
        self._pending = 0

    def add(self, step: int, loss: float | None, acc: float | None) -> None:
        self._pending += 1
        if self._pending < self.stride and self.points:
            return
        self._pending = 0
        self.points.append((step, loss, acc))
        if len(self.points) > self.capacity:
            self.points = self.points[::2]
            self.stride *= 2

    def to_dict(self) -> dict:
        return {k: [p[i] for p in self.points] for i, k in enumerate(("step", "loss", "acc"))}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Run:
    """A configured model training under the monitor (call :meth:`close` when done)."""

    def __init__(self, config: PlaygroundConfig, label: str = "A", note: str = "") -> None:
        self.config, self.label, self.note, self.id = config, label, note, next(_IDS)
        self.step, self.status, self.error = 0, "ready", None
        self.curve = Curve()
        self.hist: dict | None = None
        self.final: dict | None = None
        self._range: tuple[float, float] | None = None
        self._loss_sum, self._loss_n = 0.0, 0
        self._view: dict = {}
        self._viewed_at, self._viewed_samples = -math.inf, -1
        self.mon = None
        try:
            data = dataset(config.dataset, config.inputs)
            self.setup = Setup(model_fn=functools.partial(build_model, config, data), X=data.X_train, y=data.y_train,
                               loss_fn=nn.functional.cross_entropy, opt_fn=functools.partial(build_optimizer, config),
                               steps=config.steps, batch_size=config.batch_size)
            self.model, self.optimizer = build(self.setup, config.seed)
        except ValueError as exc:           # e.g. LSUV on a layer that is dead from the start
            self.status, self.error = "error", str(exc)
            return
        self.data = data
        self.X_test, self.y_test = data.X_test[:EVAL_EXAMPLES], data.y_test[:EVAL_EXAMPLES]
        self.mon = Monitor(self.model, optimizer=self.optimizer, every=MONITOR_EVERY).__enter__()
        self._steps = iterate_steps(self.setup, self.model, self.optimizer, monitor=self.mon, seed=config.seed)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "diverged", "error")

    def train_step(self, capture: bool = False) -> None:
        """One training step (the next of :func:`~impediments.train.loop.iterate_steps`); with ``capture``,
        histogram every activation's output."""
        if self.finished:
            return
        self.model.train()
        if capture:
            with ActivationCapture(self.model) as cap:
                loss = next(self._steps)
            self._range = self._range or cap.value_range()
            self.hist = {**cap.histograms(self._range), "step": self.step}
        else:
            loss = next(self._steps)
        value = float(loss)
        self.step += 1
        if not math.isfinite(value):
            self.status = "diverged"
        else:
            self._loss_sum, self._loss_n = self._loss_sum + value, self._loss_n + 1
            if self.step >= self.config.steps:
                self.status = "done"
        if self.finished:
            self.final = self.final_numbers()

    def final_numbers(self) -> dict:
        """The run's numbers as it ends, in eval mode on whole splits (not the curve's subset): test accuracy
        and loss over the whole test set, training loss over the whole training set (None where not finite)."""
        train_loss, _ = evaluate(self.model, self.data.X_train, self.data.y_train)
        test_loss, test_acc = evaluate(self.model, self.data.X_test, self.data.y_test)
        return {"step": self.step, "test_acc": _finite(test_acc), "test_loss": _finite(test_loss),
                "train_loss": _finite(train_loss), "test_examples": len(self.data.y_test)}

    def add_curve_point(self) -> None:
        """Close the current curve point: mean training loss since the last one and the test accuracy."""
        loss = self._loss_sum / self._loss_n if self._loss_n else None
        _, acc = evaluate(self.model, self.X_test, self.y_test)
        self.curve.add(self.step, loss, _finite(acc))
        self._loss_sum, self._loss_n = 0.0, 0

    def view(self, *, force: bool = False) -> dict:
        """The page's view of this run (monitor and doctor re-read at most every DIAGNOSE_EVERY_S)."""
        base = {"id": self.id, "label": self.label, "note": self.note, "config": self.config.to_dict(),
                "fragment": to_fragment(self.config), "status": self.status, "error": self.error,
                "step": self.step, "steps": self.config.steps, "curve": self.curve.to_dict(), "hist": self.hist,
                "final": self.final}
        if self.mon is None:
            return base
        now = time.monotonic()
        fresh = self.mon.sampled_steps != self._viewed_samples
        if fresh and (force or now - self._viewed_at >= DIAGNOSE_EVERY_S):
            stats = self.mon.stats()
            config = self.config
            self._view = monitor_view(stats, diagnose(stats), remedies=lambda code: remedy_options(code, config))
            self._viewed_at, self._viewed_samples = now, self.mon.sampled_steps
        return {**self._view, **base}

    def close(self) -> None:
        if self.mon is not None:
            self.mon.close()
