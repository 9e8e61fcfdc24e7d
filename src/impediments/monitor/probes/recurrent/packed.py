"""The gates and the gradient through time of a recurrent module fed a ``PackedSequence``.

A packed batch stores only the valid time steps, time-major, sequences sorted longest first:
block ``t`` holds ``batch_sizes[t]`` rows, one per sequence still running at step ``t``
(:func:`torch.nn.utils.rnn.pack_padded_sequence`). The gate pre-activations are computed on that
packed data directly (so padding never enters the statistics), each row's previous hidden state
gathered from the row of the same sequence one block earlier (one block later for the reverse
direction, which starts at each sequence's own last step), or from the initial state. The index
tensors come from ``batch_sizes``, which PyTorch keeps on the CPU: nothing is read back from the
device. Same equations and names as :mod:`impediments.monitor.recurrent`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from impediments.monitor.probes.recurrent import gates as R
from impediments.monitor.probes.recurrent import gradient as G
from impediments.monitor.probes.recurrent import replay as L


def layout(batch_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Index tensors (CPU, int64) of a packed batch: for each row, its ``time``, ``seq`` (position in the
    sorted batch), ``prev_fwd`` / ``prev_rev`` (row of the previous step in reading order, -1 at the
    start) and ``steps_back`` (from its sequence's last step); per sequence, its ``last`` row."""
    sizes = [int(n) for n in batch_sizes.tolist()]
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    lengths = [sum(1 for n in sizes if n > b) for b in range(sizes[0])]
    time, seq, prev_fwd, prev_rev = [], [], [], []
    for t, n in enumerate(sizes):
        for b in range(n):
            time.append(t)
            seq.append(b)
            prev_fwd.append(starts[t - 1] + b if t > 0 else -1)
            prev_rev.append(starts[t + 1] + b if t + 1 < len(sizes) and b < sizes[t + 1] else -1)
    as_long = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    out = {"time": as_long(time), "seq": as_long(seq), "prev_fwd": as_long(prev_fwd), "prev_rev": as_long(prev_rev),
           "last": as_long([starts[lengths[b] - 1] + b for b in range(len(lengths))])}
    out["steps_back"] = as_long(lengths)[out["seq"]] - 1 - out["time"]
    return out


def _like(packed: PackedSequence, data: torch.Tensor) -> PackedSequence:
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def _sorted_state(packed: PackedSequence, state: torch.Tensor) -> torch.Tensor:
    """The initial state in the packed (sorted) batch order, as the module permutes it."""
    return state if packed.sorted_indices is None else state.index_select(1, packed.sorted_indices)


def _layers(module: nn.RNNBase, packed: PackedSequence, hx, rng_state) -> tuple[list, list]:
    """``(inputs, outputs)`` packed data of every layer, the dropout masks replayed from ``rng_state``."""
    replay = rng_state is not None and L.uses_dropout(module)
    devices = [packed.data.device] if packed.data.device.type == "cuda" else []
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None))
    inputs, outputs = [], []
    with torch.random.fork_rng(devices=devices, enabled=replay):
        if replay:
            (torch.cuda.set_rng_state(rng_state, packed.data.device) if devices else torch.set_rng_state(rng_state))
        inp = packed
        for layer in range(module.num_layers):
            seq = L.run_layer(module, layer, inp, h0, c0)
            inputs.append(inp.data)
            outputs.append(seq.data)
            if replay and layer < module.num_layers - 1:
                inp = _like(packed, F.dropout(seq.data, module.dropout, training=True))
            else:
                inp = seq
    return inputs, outputs


def gate_preactivations(module: nn.RNNBase, packed: PackedSequence, hx=None, output: PackedSequence | None = None,
                        layers: int | None = None, rng_state: torch.Tensor | None = None
                        ) -> dict[str, tuple[str, bool, torch.Tensor]]:
    """Like :func:`impediments.monitor.recurrent.gate_preactivations`, on the packed rows: ``z`` is
    ``(rows, H)``, one row per valid (sequence, step).

    Raises:
        MasksNotReplayed: as the unpacked version.
    """
    mode, dirs, H = module.mode, (2 if module.bidirectional else 1), module.hidden_size
    layers = module.num_layers if layers is None else layers
    if L.uses_dropout(module) and rng_state is None and layers > 1:
        raise L.MasksNotReplayed(f"{type(module).__name__}: inter-layer dropout without a saved random state")
    h_out = module.proj_size if mode == "LSTM" and module.proj_size > 0 else H
    batch = int(packed.batch_sizes[0])
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None))
    data = packed.data
    if h0 is None:
        h0 = data.new_zeros(module.num_layers * dirs, batch, h_out)
    if mode == "LSTM" and c0 is None:
        c0 = data.new_zeros(module.num_layers * dirs, batch, H)
    lay = {k: v.to(data.device) for k, v in layout(packed.batch_sizes).items()}
    sizes = [int(n) for n in packed.batch_sizes.tolist()]          # batch_sizes lives on the CPU
    out = {}
    with torch.no_grad():
        inputs, outputs = _layers(module, packed, (h0, c0) if mode == "LSTM" else h0, rng_state)
        if output is not None and data.device.type == "cpu" and not L.same_run(outputs[-1], output.data):
            raise L.MasksNotReplayed(f"{type(module).__name__}: replayed dropout masks do not reproduce its output")
        h0s = _sorted_state(packed, h0)
        c0s = _sorted_state(packed, c0) if c0 is not None else None
        for layer in range(layers):
            inp, seq = inputs[layer].detach(), outputs[layer].detach()
            for d, suffix in enumerate(("", "_reverse")[:dirs]):
                w_ih, w_hh, b_ih, b_hh = (w.detach() if w is not None else None
                                          for w in L.layer_weights(module, layer, suffix))
                prev = lay["prev_rev"] if d else lay["prev_fwd"]
                seq_d = seq[:, d * h_out:(d + 1) * h_out]
                h_prev = torch.where((prev >= 0).unsqueeze(1), seq_d[prev.clamp_min(0)],
                                     h0s[layer * dirs + d][lay["seq"]])
                zi = inp @ w_ih.to(inp.dtype).T
                zh = h_prev.to(inp.dtype) @ w_hh.to(inp.dtype).T
                if b_ih is not None:
                    zi, zh = zi + b_ih.to(inp.dtype), zh + b_hh.to(inp.dtype)
                if mode == "GRU":
                    r = torch.sigmoid(zi[:, :H] + zh[:, :H])
                    z_all = torch.cat([zi[:, :2 * H] + zh[:, :2 * H], zi[:, 2 * H:] + r * zh[:, 2 * H:]], -1)
                else:
                    z_all = zi + zh
                for k, (gate, kind, is_gate) in enumerate(R.GATES[mode]):
                    out[f"l{layer}{suffix}.{gate}"] = (kind, is_gate, z_all[:, k * H:(k + 1) * H])
                if mode == "LSTM":
                    out[f"l{layer}{suffix}.cell"] = ("tanh", False, _cells(z_all, c0s[layer * dirs + d], sizes, d == 1))
    return out


def _cells(z: torch.Tensor, c0: torch.Tensor, sizes: list[int], reverse: bool) -> torch.Tensor:
    """The LSTM cell state of every packed row, block by block (one elementwise step per time step)."""
    H = z.shape[1] // 4
    ig = torch.sigmoid(z[:, :H]) * torch.tanh(z[:, 2 * H:3 * H])
    f = torch.sigmoid(z[:, H:2 * H])
    cells = torch.empty_like(ig)
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    c = None
    for t in (range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))):
        rows = slice(starts[t], starts[t] + sizes[t])
        if c is None:
            prev = c0[: sizes[t]].to(z.dtype)
        elif reverse:                    # sequences that start here (shorter ones) start from c0
            prev = torch.cat([c, c0[c.shape[0]: sizes[t]].to(z.dtype)], 0)
        else:
            prev = c[: sizes[t]]
        c = torch.addcmul(ig[rows], f[rows], prev)
        cells[rows] = c
    return cells


def grad_energy_through_time(module: nn.RNNBase, packed: PackedSequence, hx=None) -> torch.Tensor:
    """``e_k`` as :func:`impediments.monitor.recurrent_gradient.grad_energy_through_time`, each sequence read back
    from its own last step; ``e_k`` averages over the sequences longer than ``k``."""
    from torch.func import functional_call

    structure = G.replica(module)
    params = {n: p.detach() for n, p in module.named_parameters()}
    lay = layout(packed.batch_sizes)
    with torch.enable_grad():
        xd = packed.data.detach().requires_grad_(True)
        hx = G.detached_state(hx)
        args = (_like(packed, xd), hx) if hx is not None else (_like(packed, xd),)
        out, _ = functional_call(structure, params, args)
        h_out = out.data.shape[1] // (2 if module.bidirectional else 1)
        last = out.data[lay["last"].to(xd.device)][:, :h_out]
        (grad,) = torch.autograd.grad((last * G.probe(last)).sum(), xd)
    energy = grad.detach().float().pow(2).mean(1)
    back = lay["steps_back"].to(energy.device)
    counts = torch.bincount(lay["steps_back"]).to(energy)          # on the CPU layout: no device read
    return torch.zeros(len(counts), device=energy.device).index_add_(0, back, energy) / counts
