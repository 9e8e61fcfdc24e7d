"""The callback protocol of :func:`impediments.train.fit`."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Callback(Protocol):
    """Hooks into the training loop. Every method is optional.

    ``on_step_end`` receives the step number (1-based) and the *detached*
    loss tensor; reading it with ``.item()`` forces a host sync, so callbacks
    that care about speed keep it as a tensor.
    """

    def on_step_end(self, step: int, loss: torch.Tensor) -> None: ...

    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...


def call(callbacks, method: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, method, None)
        if fn is not None:
            fn(*args)
