"""Train and eval mode: were the forwards before each optimizer step in training mode?

An eval-mode forward of the watched model costs one counter (and, the first time, counting the
modules whose behaviour ``eval()`` changes: BatchNorm and Dropout). At each optimizer step (or
backward, without an optimizer), the step is counted as trained when a training-mode forward ran since
the previous one, and as eval-only when only eval-mode forwards did: the model was left in ``eval()``
while it trained (``model_in_eval_mode``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impediments.monitor.probes.base import Probe
from impediments.norm import is_batch_norm


@dataclass
class ModeStats:
    """Train/eval mode of the watched model's forwards around optimizer steps.

    ``eval_only_steps`` counts optimizer steps (or backward passes, without an optimizer) preceded since
    the previous one by forwards of the model in eval mode only; ``trained_steps`` those preceded by at
    least one training-mode forward. ``batchnorm`` / ``dropout``: modules whose behaviour eval() changes.
    """

    eval_forwards: int = 0
    eval_only_steps: int = 0
    trained_steps: int = 0
    first_eval_only_step: int | None = None
    batchnorm: int = 0
    dropout: int = 0


class ModeProbe(Probe):
    """Counts of eval-mode forwards and of the steps they preceded (see the module docstring)."""

    key = "mode"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.eval_since_step = self.trained_since_step = 0

    def _counts(self) -> dict:
        if not self.meta:
            self.meta.update(eval_forwards=0, eval_only_steps=0, trained_steps=0, first_eval_only_step=None)
        return self.meta

    def eval_forward(self, model) -> None:
        """An eval-mode forward of the watched model."""
        mode = self._counts()
        if "batchnorm" not in mode:
            modules = list(model.modules())
            mode["batchnorm"] = sum(is_batch_norm(m) for m in modules)
            mode["dropout"] = sum(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in modules)
        mode["eval_forwards"] += 1
        self.eval_since_step += 1

    def training_forward(self) -> None:
        self.trained_since_step += 1

    def note_step(self) -> None:
        """An optimizer step (or backward): were the forwards since the last one all in eval mode?"""
        mode = self._counts()
        if self.trained_since_step:
            mode["trained_steps"] += 1
        elif self.eval_since_step:
            mode["eval_only_steps"] += 1
            if mode["first_eval_only_step"] is None:
                mode["first_eval_only_step"] = self.ctx.steps
        self.eval_since_step = self.trained_since_step = 0

    def stats(self, total, windows) -> dict:
        return {"mode": ModeStats(**self.meta) if self.meta else None}

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        if not mine:
            mine.update(other)
