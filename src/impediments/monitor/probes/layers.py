"""Linear and Conv layers: their outputs (the pre-activations) and the backward signal through them.

Per ``nn.Linear`` / ``nn.ConvNd``, on sampled steps: the moments of its output (without min/max on
dense-only steps) and, in the backward pass, the moments of :math:`\\partial L / \\partial y`, read by a
pre-hook of the autograd node that produced the output (what ``Tensor.register_hook`` installs too,
without its Python bookkeeping). Glorot & Bengio (2010) compare exactly these two variances across
depth: the forward signal and the backward signal.

On each layer's first recorded step only (the init), also the moments of its input and output: their
ratio is the layer's variance gain at init, :math:`\\operatorname{Var}(y) / \\overline{x^2}`, which for
zero-mean independent weights is :math:`\\text{fan\\_in}\\,\\sigma_w^2` (LeCun et al. 1998; He et al.
2015): 1 for LeCun/Glorot, 2 for He, 64 for std 1.0 at fan_in 64. Two reductions per layer, once per
run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from impediments.monitor import sharding
from impediments.monitor.probes.activations import _moments
from impediments.monitor.probes.base import Probe
from impediments.monitor.state.bag import Bag, Field
from impediments.monitor.state.moments import MomentStats, moment_stats, moments_dict

class _TransposedLinearType(type):
    def __instancecheck__(cls, module) -> bool:
        if not isinstance(module, nn.Module) or isinstance(module, (nn.Linear, _ConvNd)):
            return False
        nf, nx, weight = module.__dict__.get("nf"), module.__dict__.get("nx"), module._parameters.get("weight")
        return (isinstance(nf, int) and isinstance(nx, int) and weight is not None
                and tuple(weight.shape) == (nx, nf))


class TransposedLinear(metaclass=_TransposedLinearType):
    """A Linear layer that stores its weight transposed, :math:`y = x W + b` with ``W`` of shape
    ``(nx, nf)`` = (inputs, outputs): transformers' ``Conv1D`` (Radford et al. 2018, OpenAI GPT; GPT-2,
    GPT-SW3), recognized by its ``nx``/``nf`` attributes and weight shape (``impediments.monitor`` does not
    import transformers). Recorded as a ``"Linear"``: fan-in ``nx``, a unit per weight *column*."""


#: the modules whose outputs this probe records (and whose rows the symmetry probe hashes)
LAYER_TYPES = (nn.Linear, _ConvNd, TransposedLinear)
ConvNd = _ConvNd


def unit_rows(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (the layer's weight, or its gradient) as one row per output unit: the incoming weights of
    each unit (a conv filter flattened; a :class:`TransposedLinear`'s weight transposed)."""
    return tensor.t() if isinstance(module, TransposedLinear) else tensor.flatten(1)


@dataclass
class LayerOutputStats:
    """Linear/Conv outputs (pre-activations) and the variance of their backward signal."""

    depth: int
    kind: str
    output: MomentStats
    grad_var: float | None
    #: output positions per example and channel (1 for a Linear on (N, features), H*W for a conv, T for (N, T, d))
    positions: int = 0
    #: inputs per output value: ``in_features`` (Linear), ``in_channels / groups * prod(kernel)`` (conv)
    fan_in: int = 0
    #: the moments of its input and output on its first recorded step (the init); None where not seen
    input_at_init: MomentStats | None = None
    output_at_init: MomentStats | None = None
    #: the moments of its stored weight on that step: :math:`\text{fan\_in}\,\overline{W^2}` is the variance gain the
    #: stored weight gives; a forward that transforms it (BiT's weight standardization) applies another one
    weight_at_init: MomentStats | None = None


def fan_in(module: nn.Module) -> int:
    """Inputs per output value: ``in_features`` for a Linear (``nx`` for a :class:`TransposedLinear`),
    ``in_channels / groups * prod(kernel_size)`` for a conv."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if isinstance(module, TransposedLinear):
        return int(module.nx)
    if isinstance(module, _ConvNd):
        k = 1
        for s in module.kernel_size:
            k *= int(s)
        return int(module.in_channels // module.groups * k)
    return 0


class LayerProbe(Probe):
    """Outputs of Linear/Conv layers and their gradients (see the module docstring)."""

    key = "layer"
    OUTPUT = Field("output", "moments")
    GRAD = Field("grad", "moments")
    SAMPLES = Field("samples", "count")
    INIT_INPUT = Field("init_input", "moments")
    INIT_OUTPUT = Field("init_output", "moments")
    INIT_WEIGHT = Field("init_weight", "moments")

    def record(self, name: str, module: nn.Module, out, args=()) -> None:
        """After a Linear/Conv ran on a sampled step: fold its output, hook its gradient; on its first
        recorded step also fold its input and output into the init moments."""
        if not isinstance(out, torch.Tensor):
            return
        ctx = self.ctx
        # tensor parallelism: this rank's units of a Colwise output, or a Rowwise output summed; what every
        # rank of the TP group computes alike is recorded by its first rank only (monitor.sharding)
        dout, (out, shard) = out, sharding.layer_output(out)
        ctx.last_unit_shard = (out, *shard) if shard is not None else None
        copy = shard is None and ctx.tensor_parallel_replica       # its output is another rank's too
        meta = self.meta.get(name)
        if meta is None:
            kind = "Linear" if isinstance(module, TransposedLinear) else sharding.user_class(module).__name__
            meta = self.meta[name] = {"kind": kind, "depth": len(self.meta), "first_step": ctx.step,
                                      "fan_in": fan_in(module)}
        if out.dim() >= 2 and out.numel():
            channels = out.shape[1] if isinstance(module, _ConvNd) else out.shape[-1]   # (this rank's)
            meta["positions"] = out.numel() // (out.shape[0] * max(1, channels))
        bag = ctx.state().bag(self.key, name)
        x = sharding.local(args[0]) if args and isinstance(args[0], torch.Tensor) else None
        if meta["first_step"] == ctx.step and x is not None and x.is_floating_point():
            split = sharding.is_split(args[0]) or (isinstance(module, nn.Linear) and x.dim()   # Rowwise: features
                                                   and x.shape[-1] != module.in_features)       # split by rank
            if split or not ctx.tensor_parallel_replica:           # a copy on every rank of a TP group: once
                bag.add(self.INIT_INPUT, _moments(x.detach(), None, extremes=False))
            if not copy:
                bag.add(self.INIT_OUTPUT, _moments(out.detach(), None, extremes=False))
                weight = getattr(module, "weight", None)
                if isinstance(weight, torch.Tensor) and weight.is_floating_point() and weight.numel():
                    bag.add(self.INIT_WEIGHT, _moments(sharding.local(weight).detach(), None, extremes=False))
        if copy:
            return
        m = self._fold(bag, out, dout)
        ctx.last_moments = m
        ctx.nonfinite.update_forward(m.bad, ctx.step, name)

    def _fold(self, bag: Bag, out: torch.Tensor, graph_out: torch.Tensor | None = None):
        """Fold ``out`` (this rank's part of the output) and hook the gradient of ``graph_out``, the output
        in the autograd graph (a ``DTensor`` under tensor parallelism; ``out`` itself otherwise)."""
        scratch = self.ctx.scratch
        m = _moments(out, scratch, extremes=self.ctx.full)
        bag.add(self.OUTPUT, m)
        if not self.ctx.tensor_parallel_replica:      # a TP group's batch, counted once
            bag.count(self.SAMPLES)
        out = out if graph_out is None else graph_out
        if out.requires_grad:
            def grad(g):
                if g is not None:
                    bag.add(self.GRAD, _moments(sharding.local(g), scratch, extremes=False))

            fn = out.grad_fn
            if fn is None:
                out.register_hook(grad)
            else:
                nr = out.output_nr
                fn.register_prehook(lambda grads: grad(grads[nr]))
        return m

    def stats(self, total, windows) -> dict:
        out = {}
        for name, meta in self.meta.items():
            bag = total.get((self.key, name))
            if bag is None:
                continue
            grad = bag.read(self.GRAD)
            init_in, init_out, init_w = bag.read(self.INIT_INPUT), bag.read(self.INIT_OUTPUT), bag.read(self.INIT_WEIGHT)
            out[name] = LayerOutputStats(depth=meta["depth"], kind=meta["kind"], output=moment_stats(bag.read(self.OUTPUT)),
                                         grad_var=moments_dict(grad)["var"] if grad is not None else None,
                                         positions=meta.get("positions", 0), fan_in=meta.get("fan_in", 0),
                                         input_at_init=moment_stats(init_in) if init_in is not None else None,
                                         output_at_init=moment_stats(init_out) if init_out is not None else None,
                                         weight_at_init=moment_stats(init_w) if init_w is not None else None)
        return {"layers": out}
