"""The remedy for a ``non_finite`` caused by an op outside its domain: clamp that op's input, at that line.

The doctor names the module (or the loss) whose output first held a NaN/Inf. :func:`guarded_op` looks
for the op itself: forwards of the freshly built model over the training data (and the setup's loss
on them) run under :class:`_FirstNonFinite`, a :class:`~torch.overrides.TorchFunctionMode` that
records the first call whose floating inputs are all finite but whose output is not. When that call
is undefined on part of its input (:data:`DOMAIN`: ``log`` of a non-positive value, ``sqrt`` of a
negative one, a division by zero, ...), the copy is trained under :class:`Guard`, which clamps that
op's input into its domain at exactly that ``file:line`` (in training and evaluation alike), and the
printed change says which line to guard. An overflow (a finite input whose result is too large, as
in exploding activations) is no domain error: it is left to the learning-rate remedies, and so is a
NaN that the initial weights do not produce (it appears only after updates moved them).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from impediments.fix.callsite import Site, user_site
from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model

EPS = 1e-6
#: training rows the probe forwards go through (in batches of the setup's batch size)
PROBE_ROWS = 2048


def _away_from_zero(d):
    return torch.where(d.abs() < EPS, torch.where(d < 0, -EPS, EPS), d) if isinstance(d, torch.Tensor) else d


#: op name -> (the guard's code, ``args -> guarded args``)
DOMAIN = {
    "log": ("x.clamp_min(1e-6)", lambda a: (a[0].clamp_min(EPS), *a[1:])),
    "log2": ("x.clamp_min(1e-6)", lambda a: (a[0].clamp_min(EPS), *a[1:])),
    "log10": ("x.clamp_min(1e-6)", lambda a: (a[0].clamp_min(EPS), *a[1:])),
    "log1p": ("x.clamp_min(-1 + 1e-6)", lambda a: (a[0].clamp_min(-1 + EPS), *a[1:])),
    "sqrt": ("x.clamp_min(1e-6)", lambda a: (a[0].clamp_min(EPS), *a[1:])),
    "rsqrt": ("x.clamp_min(1e-6)", lambda a: (a[0].clamp_min(EPS), *a[1:])),
    "reciprocal": ("x kept at least 1e-6 away from 0", lambda a: (_away_from_zero(a[0]), *a[1:])),
    "div": ("the denominator kept at least 1e-6 away from 0", lambda a: (a[0], _away_from_zero(a[1]), *a[2:])),
    "true_divide": ("the denominator kept at least 1e-6 away from 0",
                    lambda a: (a[0], _away_from_zero(a[1]), *a[2:])),
    "__truediv__": ("the denominator kept at least 1e-6 away from 0",
                    lambda a: (a[0], _away_from_zero(a[1]), *a[2:])),
    "__rtruediv__": ("the denominator kept at least 1e-6 away from 0", lambda a: (_away_from_zero(a[0]), *a[1:])),
    "acos": ("x.clamp(-1 + 1e-6, 1 - 1e-6)", lambda a: (a[0].clamp(-1 + EPS, 1 - EPS), *a[1:])),
    "asin": ("x.clamp(-1 + 1e-6, 1 - 1e-6)", lambda a: (a[0].clamp(-1 + EPS, 1 - EPS), *a[1:])),
    "atanh": ("x.clamp(-1 + 1e-6, 1 - 1e-6)", lambda a: (a[0].clamp(-1 + EPS, 1 - EPS), *a[1:])),
}


@dataclass(frozen=True)
class Culprit:
    """The first call that made a NaN/Inf out of finite inputs: its op name and user ``site``."""

    op: str
    site: Site | None


def _floats(x) -> list:
    return [t for t in tree_leaves(x) if isinstance(t, torch.Tensor) and t.is_floating_point()]


class _FirstNonFinite(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.found: Culprit | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.found is None:
            with torch._C.DisableTorchFunction():
                bad_out = any(not bool(torch.isfinite(t).all()) for t in _floats(out))
                if bad_out and all(bool(torch.isfinite(t).all()) for t in _floats((args, kwargs))):
                    self.found = Culprit(getattr(func, "__name__", str(func)), user_site(func))
        return out


class Guard(TorchFunctionMode):
    """Clamps the input of op ``op`` into its domain where it is called from ``site``."""

    def __init__(self, op: str, site: Site) -> None:
        super().__init__()
        self.op, self.site, self.guarded = op, site, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) == self.op and args and user_site(func) == self.site:
            self.guarded += 1
            args = DOMAIN[self.op][1](args)
        return func(*args, **kwargs)


class Guarding:
    """``model -> Guard(op, site)``: a :attr:`Pieces.modes <impediments.fix.pieces.Pieces>` entry."""

    def __init__(self, op: str, site: Site) -> None:
        self.op, self.site = op, site

    def __call__(self, model) -> Guard:
        return Guard(self.op, self.site)


def locate(pieces: Pieces, seed: int) -> Culprit | None:
    """The first call of a training forward (or of the loss) that turns finite inputs into NaN/Inf."""
    model = probe_model(pieces, seed)
    model.train()
    if pieces.prepare is not None:
        pieces.prepare(model)
    finite = torch.isfinite(pieces.X).reshape(len(pieces.X), -1).all(1) if pieces.X.is_floating_point() else None
    X, y = (pieces.X[finite], pieces.y[finite]) if finite is not None else (pieces.X, pieces.y)
    with torch.no_grad(), _FirstNonFinite() as mode:
        for start in range(0, min(len(X), PROBE_ROWS), pieces.batch_size):
            xb, yb = X[start:start + pieces.batch_size].clone(), y[start:start + pieces.batch_size]
            pieces.loss_fn(model(xb), yb)
            if mode.found is not None:
                break
    return mode.found


def guarded_op(pieces: Pieces, ctx: Context) -> Change:
    """The op that first turned finite values into NaN/Inf (log of 0, sqrt of a negative, x / 0) guarded."""
    kinds = {e.get("kind") for e in ctx.evidence("non_finite")}
    if kinds and kinds <= {"input"}:
        raise NotApplicable("the first NaN/Inf was in the input data, not made by an op")
    found = locate(pieces, ctx.seed)
    if found is None:
        raise NotApplicable("no op makes a NaN/Inf from finite values at the initial weights on the training data: "
                            "it appears only after updates (a learning-rate problem, see the lr remedies)")
    where = f" at {found.site.short()}" if found.site else ""
    if found.op not in DOMAIN:
        raise NotApplicable(f"the first NaN/Inf came from {found.op}{where} on finite inputs: an overflow, not an "
                            "op outside its domain (see the learning-rate and normalisation remedies)")
    if found.site is None:
        raise NotApplicable(f"the first NaN/Inf came from {found.op} outside the user's code (no line to guard)")
    code = (f"# {found.site.short()}:   {found.site.text}\n"
            f"# guard the input of {found.op}: {DOMAIN[found.op][0]}")
    return Change(replace(pieces, modes=(*pieces.modes, Guarding(found.op, found.site))), code,
                  f"retrained with {found.op}'s input clamped into its domain at that line only")
