"""Gates of ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``, which run inside one fused op, made visible.

The fused recurrent op calls no ``torch.sigmoid``/``torch.tanh`` the monitor could see, so on sampled
steps its gate pre-activations are recomputed from the module's weights, its input and its hidden
state sequence, one batched matmul per layer and direction, in the module's dtype:

.. math::
    z_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}

split into the gates of the cell (Hochreiter & Schmidhuber 1997; Gers et al. 2000; Cho et al. 2014):

* LSTM, rows ``[i, f, g, o]``: ``input_gate``, ``forget_gate``, ``output_gate`` (sigmoid, gates) and
  ``cell_candidate`` (tanh); and ``cell``, the cell state :math:`c_t = f_t c_{t-1} + i_t g_t` squashed by
  the tanh of :math:`h_t = o_t \\tanh(c_t)` (one elementwise step per time step);
* GRU, rows ``[r, z, n]``: ``reset_gate``, ``update_gate`` (sigmoid, gates) and ``candidate``
  :math:`n_t = \\tanh(W_{in} x_t + b_{in} + r_t \\odot (W_{hn} h_{t-1} + b_{hn}))`;
* RNN: ``hidden`` (its ``tanh`` or ``relu``).

The gradient through time, which the fused backward hides too, is measured by
:mod:`~impediments.monitor.probes.recurrent.gradient`.

Each gate becomes an activation named ``"{module}/l{layer}[_reverse].{gate}"`` (``"lstm/l0.input_gate"``),
recorded like any other (moments, regions, dead units, histograms), its units the hidden units and
each sequence one example (its steps the values per example); a
sigmoid gate is marked ``gate`` (its output multiplies another tensor, so a near-linear regime there
is no impediment). The top layer's hidden sequence is the module's output; the lower layers' are
recomputed by running each lower layer alone with the module's own weights (``torch.func.functional_call``).
Under inter-layer dropout the random state saved just before the module ran is replayed (in a forked
random stream, so training's is untouched), which draws the very masks the fused op drew; the
recomputed top layer is compared with the module's output, and if they differ only layer 0 (whose
input is known) is recorded. What cannot be recomputed is listed in the monitor's ``not_checked``:
layers above the first when the masks could not be replayed. A ``PackedSequence`` is handled on its
packed rows (padding never enters), see :mod:`~impediments.monitor.probes.recurrent.packed`.

Verified against stepping ``nn.LSTMCell`` / ``nn.GRUCell`` / ``nn.RNNCell`` by hand in
``tests/test_monitor_recurrent.py``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from impediments.monitor.probes.recurrent import replay as L

#: per mode: (gate name, kind, is a gate) for each block of ``hidden_size`` rows of ``weight_ih``
GATES = {
    "LSTM": (("input_gate", "sigmoid", True), ("forget_gate", "sigmoid", True), ("cell_candidate", "tanh", False),
             ("output_gate", "sigmoid", True)),
    "GRU": (("reset_gate", "sigmoid", True), ("update_gate", "sigmoid", True), ("candidate", "tanh", False)),
    "RNN_TANH": (("hidden", "tanh", False),),
    "RNN_RELU": (("hidden", "relu", False),),
}

def is_recurrent(module: nn.Module) -> bool:
    return isinstance(module, nn.RNNBase) and module.mode in GATES


def _previous(h_seq: torch.Tensor, h0: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``h_{t-1}`` for every ``t`` (``h_{t+1}`` when reading the sequence backwards), time-major."""
    if reverse:
        return torch.cat([h_seq[1:], h0.unsqueeze(0)], 0)
    return torch.cat([h0.unsqueeze(0), h_seq[:-1]], 0)


def _cell_states(z: torch.Tensor, c0: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``c_t = sigmoid(z_f) c_{t-1} + sigmoid(z_i) tanh(z_g)`` for every ``t`` (time-major, read backwards
    for the reverse direction), from the LSTM pre-activations ``z = [z_i, z_f, z_g, z_o]``."""
    H = z.shape[-1] // 4
    i, f, g = torch.sigmoid(z[..., :H]), torch.sigmoid(z[..., H:2 * H]), torch.tanh(z[..., 2 * H:3 * H])
    ig = i * g
    cells = torch.empty_like(ig)
    c = c0.to(z.dtype)
    for t in (range(len(z) - 1, -1, -1) if reverse else range(len(z))):
        c = torch.addcmul(ig[t], f[t], c)
        cells[t] = c
    return cells


def gate_preactivations(module: nn.RNNBase, x: torch.Tensor, hx=None, output: torch.Tensor | None = None,
                        layers: int | None = None, rng_state: torch.Tensor | None = None
                        ) -> dict[str, tuple[str, bool, torch.Tensor]]:
    """Every gate's pre-activation, ``{"l0.input_gate": (kind, is_gate, z (T, B, H))}``.

    Args:
        module: an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``.
        x: its input, ``(T, B, in)``, ``(B, T, in)`` with ``batch_first``, or unbatched ``(T, in)``.
        hx: its initial state as passed to it (``h0`` or ``(h0, c0)``), or ``None`` for zeros.
        output: the module's output sequence for this ``x`` (saves recomputing the top layer), or None.
        layers: how many layers from the bottom (default: all).
        rng_state: the random state just before the module ran, to replay its inter-layer dropout
            masks (every layer is then recomputed and the top one checked against ``output``).

    Raises:
        MasksNotReplayed: for layers above 0 under inter-layer dropout (a module in training mode) without
            ``rng_state``, or when the replay differs from ``output`` (checked on CPU only: elsewhere the
            check would read a value back to the host, which the monitor never does before ``stats()``).

    Returns:
        Time-major pre-activations, detached, in the dtype of the module's computation; for the
        GRU candidate, its full argument :math:`W_{in} x + b_{in} + r \\odot (W_{hn} h + b_{hn})`.
    """
    mode = module.mode
    dirs = 2 if module.bidirectional else 1
    layers = module.num_layers if layers is None else layers
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None))
    unbatched = x.dim() == 2
    with torch.no_grad():
        if unbatched:
            x = x.unsqueeze(1)
            output = output.unsqueeze(1) if output is not None else None
            h0 = h0.unsqueeze(1) if h0 is not None else None
            c0 = c0.unsqueeze(1) if c0 is not None else None
        elif module.batch_first:
            x = x.transpose(0, 1)
            output = output.transpose(0, 1) if output is not None else None
        h_out = module.proj_size if mode == "LSTM" and module.proj_size > 0 else module.hidden_size
        if h0 is None:
            h0 = x.new_zeros(module.num_layers * dirs, x.shape[1], h_out)
        if mode == "LSTM" and c0 is None:
            c0 = x.new_zeros(module.num_layers * dirs, x.shape[1], module.hidden_size)
        out, inp = {}, x.detach()
        replay = rng_state is not None and L.uses_dropout(module)
        if L.uses_dropout(module) and not replay and layers > 1:
            raise L.MasksNotReplayed(f"{type(module).__name__}: inter-layer dropout without a saved random state")
        if replay:
            inputs, seqs = L.replay_layers(module, inp, h0, c0, rng_state)
            if output is not None and x.device.type == "cpu" and not L.same_run(seqs[-1], output):
                raise L.MasksNotReplayed(f"{type(module).__name__}: replayed dropout masks do not reproduce its output "
                                       f"(max difference {(seqs[-1] - output).abs().max().item():.3g})")
        for layer in range(layers):
            top = layer == module.num_layers - 1
            if replay:
                inp, seq = inputs[layer], seqs[layer]
            else:
                seq = output.detach() if top and output is not None else L.run_layer(module, layer, inp, h0, c0)
            for d, suffix in enumerate(("", "_reverse")[:dirs]):
                w_ih, w_hh, b_ih, b_hh = (w.detach() if w is not None else None
                                          for w in L.layer_weights(module, layer, suffix))
                h_prev = _previous(seq[..., d * h_out:(d + 1) * h_out], h0[layer * dirs + d], reverse=d == 1)
                zi = inp @ w_ih.to(inp.dtype).T
                zh = h_prev.to(inp.dtype) @ w_hh.to(inp.dtype).T
                if b_ih is not None:
                    zi, zh = zi + b_ih.to(inp.dtype), zh + b_hh.to(inp.dtype)
                H = module.hidden_size
                if mode == "GRU":
                    r = torch.sigmoid(zi[..., :H] + zh[..., :H])
                    z_all = torch.cat([zi[..., :2 * H] + zh[..., :2 * H], zi[..., 2 * H:] + r * zh[..., 2 * H:]], -1)
                else:
                    z_all = zi + zh
                for k, (gate, kind, is_gate) in enumerate(GATES[mode]):
                    out[f"l{layer}{suffix}.{gate}"] = (kind, is_gate, z_all[..., k * H:(k + 1) * H])
                if mode == "LSTM":
                    out[f"l{layer}{suffix}.cell"] = ("tanh", False, _cell_states(z_all, c0[layer * dirs + d], d == 1))
            inp = seq
    if unbatched:
        out = {k: (kind, g, z.squeeze(1)) for k, (kind, g, z) in out.items()}
    return out
