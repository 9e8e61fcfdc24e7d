"""The remedy for a stack with no nonlinearity: a ReLU after every layer of the affine chain but the last.

``no_nonlinearity`` names, in its ``where``, the Linear/Conv layers that compose to one affine map (each takes
the previous one's output, with no activation between: :mod:`impediments.doctor.rules.linearity`). A ReLU
after each of them except the output layer makes the composition piecewise linear, which can fit any
continuous function on a compact set given enough units (Leshno, Lin, Pinkus & Schocken 1993); the output
layer stays linear so that it can still reach the targets' range.
"""
from __future__ import annotations

from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, with_model
from impediments.fix.surgery import replace_module


def relu_between_layers(pieces: Pieces, ctx: Context) -> Change:
    """A ReLU after every layer of the affine stack but the last (Leshno et al. 1993: nonlinear, not polynomial)."""
    chain = [w for w in ctx.where("no_nonlinearity")]
    probe = probe_model(pieces, ctx.seed)
    present = {n for n, _ in probe.named_modules() if n}
    hidden = [n for n in chain[:-1] if n in present]
    if not hidden:
        raise NotApplicable("no layer of the affine stack (the no_nonlinearity finding's where) is a submodule "
                            f"of the model; named: {', '.join(chain) or '(none)'}")

    def insert(model):
        for name in hidden:
            replace_module(model, name, nn.Sequential(model.get_submodule(name), nn.ReLU()))

    names = ", ".join(repr(n) for n in hidden)
    code = (f"for name in [{names}]:\n"
            "    imp.fix.replace_module(net, name, nn.Sequential(net.get_submodule(name), nn.ReLU()))")
    return Change(with_model(pieces, insert), code)
