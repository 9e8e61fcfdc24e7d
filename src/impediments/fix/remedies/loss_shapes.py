"""The remedy for ``loss_broadcast``: the regression loss call gets input and target of one shape.

The broadcast can sit anywhere in the loss the setup uses: a spec's ``loss_fn(output, target)``
that calls ``F.mse_loss(output, target)``, or a custom loss that slices first
(``F.mse_loss(out[:, :1], t)``). :func:`matched_loss_shapes` does not rewrite the setup's loss; it
wraps it in :class:`MatchedLoss`, under which a :class:`~torch.overrides.TorchFunctionMode` reshapes
the input of every regression loss call (the monitor's list: ``mse_loss``, ``l1_loss``,
``smooth_l1_loss``, ``huber_loss``) to its target's shape when the two hold the same number of
values. One probe call of the loss finds the call and its ``file:line`` for the printed change; when
the sizes differ (``(N, 10)`` against ``(N,)``) there is no reshape that means the same thing, and the
remedy says so instead of guessing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch.overrides import TorchFunctionMode

from impediments.fix.callsite import Site, user_site
from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model
from impediments.monitor.probes.loop.loss_calls import REGRESSION


def _operands(args, kwargs):
    x = args[0] if args else kwargs.get("input")
    t = args[1] if len(args) > 1 else kwargs.get("target")
    return (x, t) if isinstance(x, torch.Tensor) and isinstance(t, torch.Tensor) else (None, None)


@dataclass(frozen=True)
class Mismatch:
    """One regression loss call whose input and target shapes differ."""

    loss: str
    input_shape: tuple
    target_shape: tuple
    site: Site | None

    @property
    def reshapable(self) -> bool:
        return math.prod(self.input_shape) == math.prod(self.target_shape)

    def edit(self) -> str:
        """The change to make, as a comment on the call."""
        i, t = self.input_shape, self.target_shape
        if i == (*t, 1):
            how = "input.squeeze(-1)"
        elif t == (*i, 1):
            how = "target.squeeze(-1)"
        else:
            how = f"input.reshape({t})" if self.reshapable else "input and target of one shape"
        where = f" at {self.site.short()}:   {self.site.text}" if self.site else ""
        return f"# F.{self.loss}(...) got input {i} and target {t}; pass {how}{where}"


class _ShapeMatch(TorchFunctionMode):
    """Reshapes a regression loss's input to its target's shape (same number of values); records mismatches."""

    def __init__(self, locate: bool = False) -> None:
        super().__init__()
        self.locate, self.seen, self.reshaped = locate, [], 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in REGRESSION:
            x, t = _operands(args, kwargs)
            if x is not None and x.shape != t.shape:
                if self.locate:
                    self.seen.append(Mismatch(REGRESSION[func], tuple(x.shape), tuple(t.shape), user_site(func)))
                if x.numel() == t.numel():
                    self.reshaped += 1
                    rest = {k: v for k, v in kwargs.items() if k not in ("input", "target")}
                    return func(x.reshape(t.shape), t, *args[2:], **rest)
        return func(*args, **kwargs)


class MatchedLoss:
    """``(output, target) -> loss_fn(output, target)`` with every regression loss call inside shape-matched."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, output, target):
        with _ShapeMatch():
            return self.inner(output, target)


def locate(pieces: Pieces, seed: int) -> list[Mismatch]:
    """The mismatched regression loss calls of one loss evaluation on the first training batch."""
    model = probe_model(pieces, seed)
    model.train()
    if pieces.prepare is not None:
        pieces.prepare(model)
    xb, yb = pieces.X[:pieces.batch_size].clone(), pieces.y[:pieces.batch_size]
    with torch.no_grad():
        out = model(xb)
        with _ShapeMatch(locate=True) as mode:
            pieces.loss_fn(out, yb)
    return mode.seen


def matched_loss_shapes(pieces: Pieces, ctx: Context) -> Change:
    """Each regression loss call inside the setup's loss gets its input reshaped to the target's shape."""
    seen = locate(pieces, ctx.seed)
    if not seen:
        raise NotApplicable("one loss evaluation on a training batch showed no regression loss call with input "
                            "and target of different shapes")
    unfixable = [m for m in seen if not m.reshapable]
    if unfixable:
        m = unfixable[0]
        raise NotApplicable(f"F.{m.loss} got input {m.input_shape} and target {m.target_shape}: different numbers of "
                            "values, so no reshape means the same thing; choose the output column the target "
                            f"belongs to by hand{f' at {m.site.short()}' if m.site else ''}")
    code = "\n".join(dict.fromkeys(m.edit() for m in seen))
    return Change(replace(pieces, loss_fn=MatchedLoss(pieces.loss_fn)), code,
                  "retrained with the loss's input reshaped to its target's shape inside that call")
