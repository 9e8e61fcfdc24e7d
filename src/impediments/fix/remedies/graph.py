"""The remedy for a graph cut inside ``forward()``: train with the cut neutralised, name the line to edit.

:func:`reconnected_graph` probes one forward of the setup's model for the call that cut off the
modules the doctor named (:mod:`impediments.fix.graph_cuts`), checks by one backward which cut,
once neutralised, lets every one of their parameters receive a gradient, and trains the copy under
:class:`Reconnect`: at exactly that ``file:line`` a ``.detach()`` or ``.data`` returns its input and
an op under ``torch.no_grad()`` runs with grad mode on, while the model is in training mode.
Everything else, including the values the forward computes, is unchanged, so the retrained copy is
the user's model with that one edit. A cut by a Python number or an integer tensor cannot be
neutralised that way; the remedy then says where it is and that it was not tried.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch.overrides import TorchFunctionMode

from impediments.fix.callsite import user_site
from impediments.fix.graph_cuts import Cut, find_cuts, is_data_getter, op_name
from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model


class Reconnect(TorchFunctionMode):
    """Neutralises ``cuts`` (each matched by kind and ``file:line``) while ``model`` is training.

    Args:
        model: the model whose training-mode forward is changed.
        cuts: neutralisable :class:`~impediments.fix.graph_cuts.Cut` s.
    """

    def __init__(self, model: torch.nn.Module, cuts: list[Cut]) -> None:
        super().__init__()
        self.model = model
        self.detach = {c.site for c in cuts if c.kind == "detach"}
        self.data = {c.site for c in cuts if c.kind == "data"}
        self.no_grad = {c.site for c in cuts if c.kind == "no_grad"}
        self.neutralised = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.model.training and args and isinstance(args[0], torch.Tensor):
            if self.detach and op_name(func) in ("detach", "detach_") and user_site(func) in self.detach:
                self.neutralised += 1
                return args[0]
            if self.data and is_data_getter(func) and user_site(func) in self.data:
                self.neutralised += 1
                return args[0]
        if self.no_grad and self.model.training and not torch.is_grad_enabled() and user_site(func) in self.no_grad:
            self.neutralised += 1
            with torch.enable_grad():
                return func(*args, **kwargs)
        return func(*args, **kwargs)


class Reconnection:
    """``model -> Reconnect(model, cuts)``: a :attr:`Pieces.modes <impediments.fix.pieces.Pieces>` entry."""

    def __init__(self, cuts: list[Cut]) -> None:
        self.cuts = list(cuts)

    def __call__(self, model: torch.nn.Module) -> Reconnect:
        return Reconnect(model, self.cuts)


def _train_mode_probe(pieces: Pieces, seed: int) -> torch.nn.Module:
    model = probe_model(pieces, seed)
    model.train()
    if pieces.prepare is not None:
        pieces.prepare(model)
    return model


def _cut_modules(pieces: Pieces, ctx: Context) -> list[str]:
    names = [w for f in ctx.findings if f["code"] == "parameters_without_gradient" and f["severity"] != "info"
             for w in f["where"]]
    if not names:
        raise NotApplicable("the doctor found no module cut off from the gradient")
    return list(dict.fromkeys(names))


def _sources(model: torch.nn.Module, names: list[str]) -> list[torch.nn.Parameter]:
    modules = dict(model.named_modules())
    modules["(root)"] = model
    return [p for n in names if n in modules for p in modules[n].parameters() if p.requires_grad]


def gradients_reach(pieces: Pieces, ctx: Context, names: list[str], cuts: list[Cut]) -> bool:
    """Whether one forward and backward with ``cuts`` neutralised gives every parameter of ``names`` a gradient."""
    model = _train_mode_probe(pieces, ctx.seed)
    sources = _sources(model, names)
    xb, yb = pieces.X[:pieces.batch_size].clone(), pieces.y[:pieces.batch_size]
    with Reconnect(model, cuts):
        loss = pieces.loss_fn(model(xb), yb)
    if not loss.requires_grad:
        return False
    loss.backward()
    return bool(sources) and all(p.grad is not None for p in sources)


def locate(pieces: Pieces, ctx: Context) -> tuple[list[str], list[Cut]]:
    """The modules cut off and the cuts one training forward makes downstream of them."""
    names = _cut_modules(pieces, ctx)
    model = _train_mode_probe(pieces, ctx.seed)
    sources = _sources(model, names)
    if not sources:
        raise NotApplicable(f"no trainable parameter in {', '.join(names)}")
    return names, find_cuts(model, pieces.X[:pieces.batch_size].clone(), sources)


def _choose(pieces: Pieces, ctx: Context, names: list[str], cuts: list[Cut]) -> list[Cut]:
    candidates = [c for c in cuts if c.neutralisable]
    for cut in reversed(candidates):          # the cut nearest the loss first: often the only one
        if gradients_reach(pieces, ctx, names, [cut]):
            return [cut]
    if len(candidates) > 1 and gradients_reach(pieces, ctx, names, candidates):
        return candidates
    return []


def reconnected_graph(pieces: Pieces, ctx: Context) -> Change:
    """The call in ``forward()`` that cuts the graph (``.detach()``, ``.data``, ``torch.no_grad()``) neutralised."""
    names, cuts = locate(pieces, ctx)
    if not cuts:
        raise NotApplicable(f"one forward showed no call that cuts the graph after {names[0]} (by .detach(), .data, "
                            "no_grad, .item() or an integer cast); it may happen only on some batches")
    chosen = _choose(pieces, ctx, names, cuts)
    if not chosen:
        found = "; ".join(c.describe() for c in cuts)
        if not any(c.neutralisable for c in cuts):
            raise NotApplicable(f"the graph is cut after {names[0]} only by calls that cannot be neutralised "
                                f"(no retraining tried): {found}")
        raise NotApplicable(f"the graph is cut after {names[0]}, and neutralising its .detach()/.data/no_grad "
                            f"calls does not reconnect it; found: {found}")
    new = replace(pieces, modes=(*pieces.modes, Reconnection(chosen)))
    code = "\n".join(f"# {c.describe()}" for c in chosen)
    how = {"detach": "the .detach() returned its input", "data": "the .data returned the tensor itself",
           "no_grad": "the call ran with grad mode on"}
    note = (f"retrained with the cut neutralised while training ({'; '.join(how[c.kind] for c in chosen)}): "
            f"{', '.join(names[:4])}{' ...' if len(names) > 4 else ''} then get gradients")
    return Change(new, code, note)
