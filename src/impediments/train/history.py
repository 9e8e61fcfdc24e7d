"""Training history: per-step loss and per-evaluation metrics."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """What :func:`impediments.train.fit` measured.

    Attributes:
        step_loss: training loss at every optimizer step (index = step - 1).
        eval_steps: the step at which each evaluation ran (0 = before training).
        train_loss, train_acc, test_loss, test_acc: metrics at each evaluation.
        interrupted: True when a KeyboardInterrupt stopped training early.
        diverged: True when the loss became NaN/Inf and training stopped.
    """

    step_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    interrupted: bool = False
    diverged: bool = False

    @property
    def steps(self) -> int:
        return len(self.step_loss)

    def final(self, key: str) -> float:
        """Last value of an evaluation metric, e.g. ``final("test_acc")``."""
        values = getattr(self, key)
        if not values:
            raise ValueError(f"history has no {key} values")
        return values[-1]

    def to_dict(self) -> dict:
        return asdict(self)
