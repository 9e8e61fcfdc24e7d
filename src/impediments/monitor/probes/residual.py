"""The back-propagated signal along a residual stream, where it is comparable from block to block.

Inside a residual net the gradients of the layers within each block are the stream's gradient times
that block's local Jacobian (and a normalization's ``1/sigma``), so comparing them across depth mixes
unlike signals. The stream itself, :math:`x_{l+1} = x_l + F_l(x_l)` (or its normalized form), carries

.. math:: \\frac{\\partial L}{\\partial x_l} = \\frac{\\partial L}{\\partial x_{l+1}}
          \\left(I + \\frac{\\partial F_l}{\\partial x_l}\\right),

so its mean square :math:`\\overline{g_l^2}` is the signal one learning rate has to serve at every
block (He et al. 2016, identity mappings; Zhang et al. 2019, Fixup; Xiong et al. 2020 for pre/post-LN
transformers). Without normalization each block adds its own variance and the stream's gradient grows
toward the input geometrically.

**Which modules are stream blocks.** A module with children that sits in an ``nn.Sequential`` or
``nn.ModuleList`` next to a sibling of its own class (the repeated blocks of a ResNet stage or a
transformer), or whose class sits in several such containers (one block per stage), whose output has its input's shape, and whose autograd graph holds an addition that
takes the block's input itself as an operand (the skip connection). The graph is walked once per
block, on its first sampled forward; a block without such an addition (VGG's conv-BN-ReLU groups) is
not a stream block. Each stream block also records the first normalization layer it holds (pre-LN
``x + F(LN(x))`` and post-LN ``LN(x + F(x))`` both re-normalize what the branch sees) and whether its
output is a normalization's (post-LN, the last leaf module it ran), and, on its first recorded step only,
the root mean square of its output (the stream's scale at init: one reduction per block per run). On full steps (every sampled step of the default schedule; a window statistic
under a denser one, see :mod:`~impediments.monitor.schedule`) a tensor hook on each stream block's output
accumulates the sum of squares of its gradient (one reduction, no host read).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from impediments.monitor.probes.base import Probe
from impediments.monitor.state.bag import Field

NAN = float("nan")


@dataclass
class ResidualStreamStats:
    """The gradient at one residual block's output.

    ``grad_mean_square``: :math:`\\overline{(\\partial L / \\partial x_{l+1})^2}` over every value of the
    sampled steps; ``shape``: the block output's shape without the batch dimension.
    """

    depth: int
    shape: list[int]
    grad_mean_square: float
    samples: int
    #: the class of the first normalization layer inside the block ("" when it holds none)
    norm: str = ""
    #: whether the block's output is a normalization's output (post-LN: ``LN(x + F(x))``)
    post_norm: bool = False
    #: the root mean square of the block's output on its first recorded step (the init); NaN where not seen
    rms_at_init: float = NAN

#: most autograd nodes visited when looking for a block's skip connection
MAX_GRAPH_NODES = 5000


def is_normalization(module: nn.Module) -> bool:
    """A LayerNorm, RMSNorm, GroupNorm, BatchNorm or any model's own ``*Norm`` layer (by class name:
    transformers defines one RMSNorm class per model, ``LlamaRMSNorm``, ``T5LayerNorm``, ...)."""
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)) or (
        type(module).__name__.endswith("Norm") and next(module.children(), None) is None)


def first_normalization(block: nn.Module) -> str:
    """The class name of the first normalization layer inside ``block`` ("" when none)."""
    return next((type(m).__name__ for m in block.modules() if m is not block and is_normalization(m)), "")


def candidates(model: nn.Module) -> set[int]:
    """Ids of modules with children, in an ``nn.Sequential``/``nn.ModuleList``, that have a same-class sibling
    there or whose class is repeated in another such container (the one block of each stage of a staged
    model built one block deep: Swin, SwiftFormer, ConvNeXt at ``depths=[1, 1, 1, 1]``)."""
    out, in_containers = set(), {}
    for parent in model.modules():
        if not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            continue
        kids = list(parent.children())
        for i, k in enumerate(kids):
            if next(k.children(), None) is None:
                continue
            in_containers.setdefault(type(k), set()).add(id(parent))
            if (i and type(kids[i - 1]) is type(k)) or (i + 1 < len(kids) and type(kids[i + 1]) is type(k)):
                out.add(id(k))
    repeated = {cls for cls, parents in in_containers.items() if len(parents) > 1}
    for parent in model.modules():
        if isinstance(parent, (nn.Sequential, nn.ModuleList)):
            out.update(id(k) for k in parent.children() if type(k) in repeated and next(k.children(), None) is not None)
    return out


def has_skip_connection(out: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether ``out``'s autograd graph adds ``x`` itself to something (the identity path of a block)."""
    source = x.grad_fn
    if source is None or out.grad_fn is None:
        return False
    seen, todo = set(), [out.grad_fn]
    while todo and len(seen) < MAX_GRAPH_NODES:
        node = todo.pop()
        if node is None or node is source or node in seen:
            continue
        seen.add(node)
        nxt = [f for f, _ in node.next_functions]
        if type(node).__name__.startswith("AddBackward") and source in nxt:
            return True
        todo.extend(nxt)
    return False


class ResidualProbe(Probe):
    """The gradient along residual streams (see the module docstring)."""

    key = "stream"
    SUMSQ = Field("sumsq", "sum")
    VALUES = Field("values", "count")
    SAMPLES = Field("samples", "count")
    INIT_SUMSQ = Field("init_sumsq", "sum")
    INIT_VALUES = Field("init_values", "count")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        #: ids of the modules that may be stream blocks (:func:`candidates`), found on the first full step
        self.candidates: set | None = None

    def detach(self) -> None:
        self.candidates = None

    def record(self, name: str, module: nn.Module, args, out) -> None:
        """On a full step: if ``module`` is a stream block, accumulate its output gradient's sum of squares."""
        ctx = self.ctx
        ids = self.candidates
        if ids is None:
            ids = self.candidates = candidates(ctx.module) if ctx.module is not None else set()
        if id(module) not in ids or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if not isinstance(out, torch.Tensor) or out.shape != x.shape or not out.requires_grad or not out.numel():
            return
        meta = self.meta.get(name)
        if meta is None:
            last = ctx.last_leaf            # the last leaf module this block ran: a norm in a post-LN block
            meta = self.meta[name] = {"depth": len(self.meta), "shape": list(out.shape[1:]),
                                      "residual": has_skip_connection(out, x), "norm": first_normalization(module),
                                      "post_norm": last is not None and is_normalization(last)
                                      and any(m is last for m in module.modules())}
        if not meta["residual"]:
            return
        bag = ctx.state().bag(self.key, name)
        if meta.setdefault("first_step", ctx.step) == ctx.step:      # the stream's scale at init, once
            bag.add(self.INIT_SUMSQ, torch.linalg.vector_norm(out.detach(), dtype=torch.float64).square().reshape(1))
            bag.count(self.INIT_VALUES, out.numel())
        bag.count(self.SAMPLES)
        sumsq, values = self.SUMSQ, self.VALUES

        def hook(g: torch.Tensor) -> None:
            # one reduction accumulated in float64, without a float64 copy of the gradient
            bag.add(sumsq, torch.linalg.vector_norm(g.detach(), dtype=torch.float64).square().reshape(1))
            bag.count(values, g.numel())

        out.register_hook(hook)

    def _stream(self, meta: dict, bag) -> ResidualStreamStats:
        values = bag.read(self.VALUES)
        sumsq = bag.read(self.SUMSQ)
        sumsq = float(sumsq.cpu()[0]) if sumsq is not None else NAN
        init_sumsq, init_values = bag.read(self.INIT_SUMSQ), bag.read(self.INIT_VALUES)
        rms = (float(init_sumsq.cpu()[0]) / init_values) ** 0.5 if init_sumsq is not None and init_values else NAN
        return ResidualStreamStats(depth=meta["depth"], shape=list(meta["shape"]), samples=bag.read(self.SAMPLES),
                                   grad_mean_square=sumsq / values if values else NAN, norm=meta["norm"],
                                   post_norm=meta["post_norm"], rms_at_init=rms)

    def stats(self, total, windows) -> dict:
        return {"residual_stream": {n: self._stream(m, total[(self.key, n)]) for n, m in self.meta.items()
                                    if m["residual"] and (self.key, n) in total}}
