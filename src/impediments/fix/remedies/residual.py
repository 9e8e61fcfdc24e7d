"""Zero the last layer of every residual branch, so each block starts as the identity.

For any residual net, not only :class:`impediments.models.mlp.ResidualBlock`: the blocks are the ones
the monitor finds on the residual stream (:mod:`impediments.monitor.probes.residual`: a repeated block whose
autograd graph adds its own input to its branch), found by one probe forward of a fresh model. In each
block the branch's last parameterized layer to run before the block's output, a normalization's scale
(Goyal et al. 2017: zero-init the last BatchNorm's gamma of each branch) or a Linear/Conv weight
(Zhang, Dauphin & Ma 2019, Fixup; Hardt & Ma 2017), is set to zero. At init each block is then the
identity, and the stream's forward and backward signal no longer grows block by block; the branch
still learns, since the gradient of the zeroed weight is not zero.

Blocks whose output is a normalization of the sum (post-LN, ``LN(x + F(x))``) are left as they are: their
last layer is that normalization, and zeroing it would cut the stream itself.
"""
from __future__ import annotations

import torch
from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, sample, with_model
from impediments.monitor.probes.residual import candidates, has_skip_connection

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def branch_ends(model: nn.Module, x: torch.Tensor) -> dict[str, str]:
    """``{block: module}``: per residual block, the last parameterized leaf that ran inside it before its
    output (the end of its branch); post-norm blocks are left out (see the module docstring)."""
    names = {id(m): n for n, m in model.named_modules()}
    blocks = candidates(model)
    order: list[tuple[str, torch.Tensor]] = []         # leaves with parameters, in the order they ran
    found: dict[str, str] = {}

    def leaf_post(module, args, out):
        if (isinstance(module, (*_NORMS, *_LAYERS)) and isinstance(getattr(module, "weight", None), nn.Parameter)
                and isinstance(out, torch.Tensor)):
            order.append((names[id(module)], out))

    def block_post(module, args, out):
        x_in = args[0] if args else None
        if not (isinstance(x_in, torch.Tensor) and isinstance(out, torch.Tensor) and out.shape == x_in.shape):
            return
        name = names[id(module)]
        inside = [(n, o) for n, o in order if n.startswith(name + ".")]
        if not inside or not has_skip_connection(out, x_in):
            return
        last, last_out = inside[-1]
        if last_out is out:                               # the block's output is its last layer's: post-norm
            return
        found[name] = last

    handles = [m.register_forward_hook(leaf_post) for m in model.modules() if next(m.children(), None) is None]
    handles += [m.register_forward_hook(block_post) for m in model.modules() if id(m) in blocks]
    try:
        with torch.enable_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


def zero_init_residual_branches(pieces: Pieces, ctx: Context) -> Change:
    """Zero each residual branch's last weight (its last norm's scale, or its last Linear/Conv's weight)."""
    probe = probe_model(pieces, ctx.seed)
    ends = branch_ends(probe, sample(pieces))
    if not ends:
        raise NotApplicable("no residual block found on a residual stream (a repeated block adding its input "
                            "to its branch), or every one is post-normalized")
    targets = sorted(set(ends.values()))

    def zero(model):
        with torch.no_grad():
            for name in targets:
                model.get_submodule(name).weight.zero_()

    shown = ", ".join(repr(t) for t in targets[:4]) + (", ..." if len(targets) > 4 else "")
    code = (f"for name in [{shown}]:   # the last layer of each residual branch ({len(targets)})\n"
            f"    nn.init.zeros_(net.get_submodule(name).weight)")
    return Change(with_model(pieces, zero), code)
