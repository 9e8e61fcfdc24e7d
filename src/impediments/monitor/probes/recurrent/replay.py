"""Single layers of a stacked ``nn.LSTM``/``nn.GRU``/``nn.RNN`` run again, with the module's own weights.

The fused op returns only the top layer's output sequence. To recompute the gates of the layers
below it (:mod:`~impediments.monitor.probes.recurrent.gates`), each layer is run alone (``torch.func.functional_call``
on a structure-only copy on ``meta``, so its own fused op with the module's weights). Under inter-layer
dropout the random state saved just before the module ran (:func:`before`) is replayed in a forked
random stream, which draws the very masks the fused op drew (one ``dropout`` per layer below the top,
in order, on the layer's output); training's random stream is untouched.
"""
from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

#: the random state just before each recurrent module with inter-layer dropout ran (sampled steps only)
RNG_BEFORE: "weakref.WeakKeyDictionary[nn.Module, torch.Tensor]" = weakref.WeakKeyDictionary()


class MasksNotReplayed(RuntimeError):
    """Replaying the saved random state did not reproduce the module's output."""


def uses_dropout(module: nn.RNNBase) -> bool:
    return module.training and module.dropout > 0 and module.num_layers > 1


def before(module: nn.RNNBase, args) -> None:
    """Called just before a sampled forward of ``module``: save the random state its dropout will use."""
    if uses_dropout(module) and args and isinstance(args[0], (torch.Tensor, PackedSequence)):
        device = (args[0].data if isinstance(args[0], PackedSequence) else args[0]).device
        RNG_BEFORE[module] = (torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())


def layer_weights(module: nn.RNNBase, layer: int, suffix: str):
    w_ih = getattr(module, f"weight_ih_l{layer}{suffix}")
    w_hh = getattr(module, f"weight_hh_l{layer}{suffix}")
    b_ih = getattr(module, f"bias_ih_l{layer}{suffix}", None) if module.bias else None
    b_hh = getattr(module, f"bias_hh_l{layer}{suffix}", None) if module.bias else None
    return w_ih, w_hh, b_ih, b_hh


def run_layer(module: nn.RNNBase, layer: int, x: torch.Tensor, h0, c0) -> torch.Tensor:
    """The output sequence ``(T, B, D * H_out)`` of layer ``layer`` alone on ``x`` (time-major), with the
    module's own weights (its fused op, so exactly what the module computed without dropout)."""
    from torch.func import functional_call

    dirs = 2 if module.bidirectional else 1
    kwargs = dict(num_layers=1, bias=module.bias, batch_first=False, bidirectional=module.bidirectional)
    if module.mode == "LSTM":
        kwargs["proj_size"] = module.proj_size
    if module.mode.startswith("RNN"):
        kwargs["nonlinearity"] = "tanh" if module.mode == "RNN_TANH" else "relu"
    size = (x.data if isinstance(x, PackedSequence) else x).shape[-1]
    one = type(module)(size, module.hidden_size, device="meta", **kwargs)   # structure only, no memory
    params = {}
    for suffix in ("", "_reverse")[:dirs]:
        for short, full in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), layer_weights(module, layer, suffix)):
            if full is not None:
                params[f"{short}_l0{suffix}"] = full
        if module.mode == "LSTM" and module.proj_size > 0:
            params[f"weight_hr_l0{suffix}"] = getattr(module, f"weight_hr_l{layer}{suffix}")
    hx = None
    if h0 is not None:
        hl = h0[layer * dirs:(layer + 1) * dirs]
        hx = (hl, c0[layer * dirs:(layer + 1) * dirs]) if module.mode == "LSTM" else hl
    out, _ = functional_call(one, params, (x, hx) if hx is not None else (x,))
    return out


def same_run(replayed: torch.Tensor, output: torch.Tensor) -> bool:
    """The replay reproduced the output: mean absolute difference within 1e-3 of the mean magnitude.

    Other masks change a fraction ``p`` of the units outright (a relative difference of order ``p``);
    the fused op and per-layer calls may only round differently, which chaotic (saturated) dynamics
    amplify to ~1e-5 over a sequence, never to 1e-3.
    """
    return bool((replayed - output).abs().mean() <= 1e-3 * output.abs().mean())


def replay_layers(module: nn.RNNBase, x: torch.Tensor, h0, c0, rng_state: torch.Tensor):
    """``(inputs, outputs)`` of every layer, time-major, with the inter-layer dropout masks redrawn from
    ``rng_state`` in a forked random stream (the fused op draws one ``dropout`` per layer below the top,
    in order, on the layer's output: the same draws)."""
    devices = [x.device] if x.device.type == "cuda" else []
    inputs, outputs = [], []
    with torch.random.fork_rng(devices=devices):
        if devices:
            torch.cuda.set_rng_state(rng_state, x.device)
        else:
            torch.set_rng_state(rng_state)
        inp = x
        for layer in range(module.num_layers):
            seq = run_layer(module, layer, inp, h0, c0)
            inputs.append(inp)
            outputs.append(seq)
            if layer < module.num_layers - 1:
                inp = F.dropout(seq, module.dropout, training=True)
    return inputs, outputs
