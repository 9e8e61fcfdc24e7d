"""Gates of nn.LSTM / nn.GRU / nn.RNN recomputed on sampled steps, against stepping torch's own cells."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from impediments import watch
from impediments.monitor.probes.recurrent.gates import gate_preactivations
from impediments.monitor.probes.recurrent.gradient import grad_energy_through_time


def _cell_reference(module, layer: int, suffix: str, x_seq, h0, c0):
    """Step ``nn.LSTMCell``/``nn.GRUCell``/``nn.RNNCell`` (loaded with the layer's weights) over
    ``x_seq`` (T, B, in), in reading order; returns ``(pre-activations (T, B, G*H), outputs (T, B, H))``
    with the gate pre-activations read back through hooks on the cell's own matmuls."""
    H = module.hidden_size
    cell_type = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(module.mode, nn.RNNCell)
    kw = {"nonlinearity": "tanh" if module.mode == "RNN_TANH" else "relu"} if cell_type is nn.RNNCell else {}
    cell = cell_type(x_seq.shape[-1], H, bias=module.bias, **kw).double()
    with torch.no_grad():
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(module, f"{p}_l{layer}{suffix}"):
                getattr(cell, p).copy_(getattr(module, f"{p}_l{layer}{suffix}"))
    times = range(len(x_seq) - 1, -1, -1) if suffix else range(len(x_seq))
    pre, outs, cells = [None] * len(x_seq), [None] * len(x_seq), [None] * len(x_seq)
    h, c = h0, c0
    for t in times:
        zi = x_seq[t] @ cell.weight_ih.T + (cell.bias_ih if module.bias else 0)
        zh = h @ cell.weight_hh.T + (cell.bias_hh if module.bias else 0)
        if module.mode == "GRU":          # n's argument: W_in x + b_in + r * (W_hn h + b_hn)
            r = torch.sigmoid(zi[:, :H] + zh[:, :H])
            pre[t] = torch.cat([zi[:, :2 * H] + zh[:, :2 * H], zi[:, 2 * H:] + r * zh[:, 2 * H:]], 1)
        else:
            pre[t] = zi + zh
        if module.mode == "LSTM":
            h, c = cell(x_seq[t], (h, c))
            cells[t] = c
        else:
            h = cell(x_seq[t], h)
        outs[t] = h
    if module.mode == "LSTM":                 # the cell state joins as the last block
        pre = [torch.cat([p, c], 1) for p, c in zip(pre, cells)]
    return torch.stack(pre), torch.stack(outs)


@pytest.mark.parametrize("mode,layers,bidirectional,batch_first,bias", [
    ("LSTM", 2, True, True, True), ("LSTM", 1, False, False, False), ("GRU", 2, True, False, True),
    ("GRU", 1, False, True, True), ("RNN_TANH", 2, False, True, True), ("RNN_RELU", 1, True, False, True),
])
def test_gate_preactivations_match_stepping_the_cells(mode, layers, bidirectional, batch_first, bias):
    torch.manual_seed(1)
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}.get(mode, nn.RNN)
    kw = {"nonlinearity": "tanh" if mode == "RNN_TANH" else "relu"} if cls is nn.RNN else {}
    module = cls(5, 6, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias,
                 **kw).double()
    T, B, D = 7, 3, 2 if bidirectional else 1
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), dtype=torch.double)
    h0 = torch.randn(layers * D, B, 6, dtype=torch.double)
    hx = (h0, torch.randn(layers * D, B, 6, dtype=torch.double)) if mode == "LSTM" else h0
    output, _ = module(x, hx)
    got = gate_preactivations(module, x, hx, output)
    G = {"LSTM": 5, "GRU": 3}.get(mode, 1)             # LSTM: i, f, g, o and the cell state
    assert len(got) == layers * D * G
    inp = x.transpose(0, 1) if batch_first else x
    for layer in range(layers):
        outs = []
        for d, suffix in enumerate(("", "_reverse")[:D]):
            c0 = hx[1][layer * D + d] if mode == "LSTM" else None
            pre, h_seq = _cell_reference(module, layer, suffix, inp, h0[layer * D + d], c0)
            names = [n for n in got if n.startswith(f"l{layer}{suffix}.")]
            assert len(names) == G
            mine = torch.cat([got[n][2] for n in names], -1)   # gate order of weight_ih rows, then the cell
            torch.testing.assert_close(mine, pre)
            outs.append(h_seq)
        inp = torch.cat(outs, -1)
    torch.testing.assert_close(inp, output.transpose(0, 1) if batch_first else output)   # the reference is right


def test_unbatched_input_gives_the_batched_gates():
    torch.manual_seed(2)
    module = nn.GRU(4, 5, num_layers=2).double()
    x = torch.randn(6, 4, dtype=torch.double)
    out, _ = module(x)
    single = gate_preactivations(module, x, None, out)
    batched = gate_preactivations(module, x.unsqueeze(1), None, out.unsqueeze(1))
    for name, (_, _, z) in single.items():
        torch.testing.assert_close(z, batched[name][2].squeeze(1))


class _LanguageModel(nn.Module):
    def __init__(self, mode: str, dropout: float = 0.0, vocab: int = 30, hidden: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, 12)
        self.rnn = getattr(nn, mode)(12, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)


def _train(model, steps: int = 3, vocab: int = 30, lr: float = 0.1, x=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(steps):
            x = torch.randint(0, vocab, (4, 9)) if x is None else x
            loss = nn.functional.cross_entropy(model(x).reshape(-1, vocab), x.roll(-1, 1).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return mon.stats()


def test_lstm_gates_are_watched_activations_and_gates_are_marked():
    torch.manual_seed(0)
    model = _LanguageModel("LSTM")
    x = torch.randint(0, 30, (4, 9))
    stats = _train(model, lr=0.0, x=x)            # the same weights and batch at every step
    gates = {n: a for n, a in stats.activations.items() if n.startswith("rnn/")}
    assert sorted(gates) == sorted(f"rnn/l{layer}.{g}" for layer in (0, 1)
                                   for g in ("input_gate", "forget_gate", "cell_candidate", "output_gate", "cell"))
    for name, a in gates.items():
        assert a.units == 16 and a.samples == 3 and a.unit_total == 3 * 4 * 9
        assert a.values_per_example == 9              # a sequence is one example, its 9 steps its values
        assert a.kind == ("sigmoid" if name.endswith("_gate") else "tanh")
        assert a.gate == name.endswith("_gate")
    # brute force: the recorded pre-activation moments and dead units are those of the gates stepped by LSTMCell
    with torch.no_grad():
        emb = model.emb(x).transpose(0, 1).double()
        lstm = model.rnn.double()
        zeros = torch.zeros(4, 16, dtype=torch.double)
        _, h_seq = _cell_reference(lstm, 0, "", emb, zeros, zeros)
        pre, _ = _cell_reference(lstm, 1, "", h_seq, zeros, zeros)
    forget = pre[..., 16:32].reshape(-1)
    a = stats.activations["rnn/l1.forget_gate"]
    assert a.input.count == 3 * forget.numel()
    assert abs(a.input.mean - forget.mean().item()) < 1e-5
    assert abs(a.input.var - forget.var(unbiased=False).item()) < 1e-5
    assert abs(a.input.max - forget.max().item()) < 1e-5
    assert set(stats.recurrent) == {"rnn"} and stats.recurrent["rnn"].samples == 3


def test_inter_layer_dropout_masks_are_replayed_exactly():
    """The gates of layer 1 read the dropped-out outputs of layer 0: the masks the fused op drew are
    redrawn from the random state saved before it ran (checked: the recomputed top layer equals the
    module's output, else only layer 0 would be recorded)."""
    from impediments.monitor.probes.recurrent import gates as recurrent, replay

    torch.manual_seed(0)
    stats = _train(_LanguageModel("GRU", dropout=0.3))
    names = {n for n in stats.activations if n.startswith("rnn/")}
    assert names == {f"rnn/l{k}.{g}" for k in (0, 1) for g in ("reset_gate", "update_gate", "candidate")}
    assert "rnn/gates_above_l0" not in stats.not_checked
    # directly: the replayed top layer is the module's output; without the saved state, layer 1 is refused
    module = nn.LSTM(4, 5, num_layers=3, dropout=0.5).double()
    x = torch.randn(6, 2, 4, dtype=torch.double)
    state = torch.get_rng_state()
    out, _ = module(x)
    gates = recurrent.gate_preactivations(module, x, None, out, rng_state=state)
    assert len(gates) == 3 * 5
    with pytest.raises(replay.MasksNotReplayed):
        recurrent.gate_preactivations(module, x, None, out)
    with pytest.raises(replay.MasksNotReplayed):                  # a wrong state is caught, not used
        recurrent.gate_preactivations(module, x, None, out, rng_state=torch.manual_seed(123).get_state())
    assert len(recurrent.gate_preactivations(module, x, None, out, layers=1)) == 5


def test_projected_lstm_top_layer_from_its_output_equals_rerunning_it():
    """``proj_size``: h is projected; the top layer's gates read from the module output agree with
    re-running that layer alone (the path taken for the lower layers), and the layer shapes hold."""
    torch.manual_seed(3)
    module = nn.LSTM(4, 6, num_layers=2, proj_size=3, bidirectional=True).double()
    x = torch.randn(5, 2, 4, dtype=torch.double)
    out, _ = module(x)
    from_output = gate_preactivations(module, x, None, out)
    rerun = gate_preactivations(module, x, None, None)
    assert from_output.keys() == rerun.keys() and len(rerun) == 2 * 2 * 5
    for name, (_, _, z) in rerun.items():
        assert z.shape == (5, 2, 6)
        torch.testing.assert_close(from_output[name][2], z)


# --------------------------------------------------------------------------------------------- gradient through time
@pytest.mark.parametrize("mode,batch_first", [("RNN_TANH", False), ("LSTM", True), ("GRU", False)])
def test_gradient_energy_through_time_matches_autograd_through_stepped_cells(mode, batch_first):
    torch.manual_seed(4)
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}.get(mode, nn.RNN)
    module = cls(3, 5, num_layers=2, batch_first=batch_first).double()
    T, B = 6, 4
    x = torch.randn((B, T, 3) if batch_first else (T, B, 3), dtype=torch.double)
    got = grad_energy_through_time(module, x)
    # reference: step a cell per layer by hand, differentiate <u, h_T> w.r.t. every input step
    seq = (x.transpose(0, 1) if batch_first else x).clone().requires_grad_(True)
    inp = seq
    for layer in range(2):
        zeros = torch.zeros(B, 5, dtype=torch.double)
        cell_type = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(mode, nn.RNNCell)
        cell = cell_type(inp.shape[-1], 5).double()
        with torch.no_grad():
            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, p).copy_(getattr(module, f"{p}_l{layer}"))
        h, c, outs = zeros, zeros, []
        for t in range(T):
            if mode == "LSTM":
                h, c = cell(inp[t], (h, c))
            else:
                h = cell(inp[t], h)
            outs.append(h)
        inp = torch.stack(outs)
    u = torch.randn(B, 5, generator=torch.Generator().manual_seed(0), dtype=torch.double)
    (grad,) = torch.autograd.grad((inp[-1] * u).sum(), seq)
    expected = grad.pow(2).mean((1, 2)).flip(0).float()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert got[-1] < got[0]                                            # it does decay through time


def test_the_monitor_leaves_training_unchanged():
    """The recomputation draws no random number from training's stream (inter-layer dropout here)."""
    def losses(watched: bool):
        torch.manual_seed(0)
        model = _LanguageModel("LSTM", dropout=0.3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out = []
        ctx = watch(model, optimizer=opt, every=1) if watched else None
        if ctx is not None:
            ctx.__enter__()
        for _ in range(3):
            x = torch.randint(0, 30, (4, 9))
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 30), x.roll(-1, 1).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        if ctx is not None:
            ctx.__exit__(None, None, None)
        return out

    assert losses(True) == losses(False)


def _lm_report(setup, mode="LSTM", steps: int = 3):
    torch.manual_seed(0)
    model = _LanguageModel(mode)
    with torch.no_grad():
        setup(model.rnn)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(steps):
            x = torch.randint(0, 30, (4, 24))
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 30), x.roll(-1, 1).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return mon.report()


def _close_forget_gates(lstm):
    for name, p in lstm.named_parameters():
        if name.startswith("bias"):
            p[lstm.hidden_size:2 * lstm.hidden_size] = -6.0


def test_gradients_through_time_findings():
    from impediments.doctor.rules.recurrent import horizon
    from impediments.doctor.thresholds import Thresholds

    floor = Thresholds().through_time_floor
    healthy = _lm_report(lambda rnn: None)
    assert not [f for f in healthy.by_code("vanishing_gradients") if f.where == ["rnn"]]
    closed = _lm_report(_close_forget_gates)                        # memory cut by closed forget gates
    (f,) = [f for f in closed.by_code("vanishing_gradients") if f.where == ["rnn"]]
    energy = closed.stats.recurrent["rnn"].energy_by_steps_back
    assert f.severity == "info" and f.evidence["horizon_steps"] == horizon(energy, floor) < 23
    assert energy[f.evidence["horizon_steps"]] >= floor > energy[f.evidence["horizon_steps"] + 1]
    # an RNN without recurrent weights (a GRU would still carry h through its update gate)
    from impediments.report.doctor_html import gradient_through_time

    assert 'alt="gradient through time"' in gradient_through_time(closed.stats, floor)   # the HTML report draws it
    assert gradient_through_time(_fit_without_recurrence(), floor) is None
    cut = _lm_report(lambda rnn: [getattr(rnn, f"weight_hh_l{k}").zero_() for k in range(2)], mode="RNN")
    (f,) = [f for f in cut.by_code("vanishing_gradients") if f.where == ["rnn"]]   # no recurrence at all
    assert f.severity == "warning" and f.evidence["horizon_steps"] == 0


def _scale_recurrent(factor):
    def setup(rnn):
        for k in range(rnn.num_layers):
            getattr(rnn, f"weight_hh_l{k}").mul_(factor)
    return setup


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_exploding_gradients_through_time(mode):
    """Recurrent weights x10 make the gradient grow with every step back (Pascanu et al. 2013): the
    finding quotes the largest energy, which must be the measured one and above the depth bound."""
    from impediments.doctor.thresholds import Thresholds

    bound = Thresholds().gradient_var_ratio
    healthy = _lm_report(lambda rnn: None, mode=mode)
    assert not [f for f in healthy.by_code("exploding_gradients") if f.where == ["rnn"]]
    exploding = _lm_report(_scale_recurrent(10.0), mode=mode)
    (f,) = [f for f in exploding.by_code("exploding_gradients") if f.where == ["rnn"]]
    energy = exploding.stats.recurrent["rnn"].energy_by_steps_back
    k = f.evidence["at_steps_back"]
    assert f.severity == "warning" and f.evidence["max_energy_steps_back"] == energy[k] == max(energy) > bound
    assert f.evidence["growth_per_step"] == pytest.approx(energy[k] ** (1 / k))
    assert not [f for f in exploding.by_code("vanishing_gradients") if f.where == ["rnn"]]


def test_one_depth_per_stacked_layer():
    """A layer's gates, candidate (and LSTM cell) share one depth, so the depth trend counts the layers."""
    report = _lm_report(lambda rnn: None, mode="LSTM")
    acts = report.stats.activations
    depth = {name: a.depth for name, a in acts.items() if name.startswith("rnn/")}
    l0 = {d for n, d in depth.items() if n.startswith("rnn/l0.")}
    l1 = {d for n, d in depth.items() if n.startswith("rnn/l1.")}
    assert len(l0) == len(l1) == 1 and l0 != l1 and len(depth) == 10


def test_geometric_ratio_fits_against_distinct_depths():
    """Least squares on (depth rank, log value), checked against numpy's polyfit."""
    import numpy as np

    from impediments.doctor.rules.base import geometric_ratio

    rng = np.random.default_rng(0)
    values = list(np.exp(rng.normal(size=7)))
    depths = [3, 3, 3, 8, 8, 20, 20]
    ranks = [0, 0, 0, 1, 1, 2, 2]
    slope = np.polyfit(ranks, np.log(values), 1)[0]
    assert geometric_ratio(values, depths) == pytest.approx(float(np.exp(slope * 2)))
    slope = np.polyfit(range(7), np.log(values), 1)[0]
    assert geometric_ratio(values) == pytest.approx(float(np.exp(slope * 6)))


def test_recurrent_stats_survive_json_and_old_documents_load():
    from impediments.monitor.schema import MonitorStats

    stats = _lm_report(lambda rnn: None, steps=1).stats
    d = stats.to_dict()
    assert MonitorStats.from_dict(d).recurrent == stats.recurrent
    d.pop("recurrent")
    assert MonitorStats.from_dict(d).recurrent == {}


def test_accelerator_path_never_reads_a_value_back():
    """On ``meta`` every host read raises: the gates, the dropout replay and the gradient through time
    run there without one (the replay check is CPU-only and says so)."""
    model = _LanguageModel("LSTM", dropout=0.2).to("meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(2):
            x = torch.randint(0, 30, (4, 9), device="meta")
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 30), x.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert {f"rnn/l{k}.forget_gate" for k in (0, 1)} <= set(mon.activations.meta) and "rnn" in mon.recurrent.meta
    assert "rnn/dropout_replay" in mon.ctx.not_checked


# --------------------------------------------------------------------------------------------- packed sequences
@pytest.mark.parametrize("mode,bidirectional", [("LSTM", True), ("GRU", False), ("RNN_TANH", True)])
def test_packed_sequences_give_the_gates_of_each_sequence_alone(mode, bidirectional):
    """Reference: every sequence run alone (unpacked, its own length, its own initial state), through
    the unpacked path that is itself checked against the cells above; padding never enters."""
    from torch.nn.utils.rnn import pack_padded_sequence

    from impediments.monitor.probes.recurrent import packed as recurrent_packed

    torch.manual_seed(5)
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}.get(mode, nn.RNN)
    module = cls(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    D, lengths = 2 if bidirectional else 1, [5, 2, 4]                     # unsorted: enforce_sorted=False
    x = torch.randn(3, 5, 3, dtype=torch.double)
    h0 = torch.randn(2 * D, 3, 4, dtype=torch.double)
    hx = (h0, torch.randn(2 * D, 3, 4, dtype=torch.double)) if mode == "LSTM" else h0
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = module(packed, hx)
    got = recurrent_packed.gate_preactivations(module, packed, hx, out)
    rows = recurrent_packed.layout(packed.batch_sizes)
    for b_sorted, b in enumerate(packed.sorted_indices.tolist()):
        state = tuple(s[:, b:b + 1] for s in hx) if mode == "LSTM" else hx[:, b:b + 1]
        alone = gate_preactivations(module, x[b:b + 1, :lengths[b]], state)
        mine = rows["seq"] == b_sorted
        for name, (_, _, z) in alone.items():
            torch.testing.assert_close(got[name][2][mine], z[:, 0])
    energy = recurrent_packed.grad_energy_through_time(module, packed, hx)
    assert energy.shape == (5,) and energy[0] > energy[-1] > 0


def test_packed_sequences_are_watched():
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    lstm = nn.LSTM(6, 8, num_layers=2, dropout=0.2)
    with watch(lstm, every=1) as mon:
        for _ in range(2):
            packed = pack_padded_sequence(torch.randn(7, 4, 6), [7, 3, 5, 2], enforce_sorted=False)
            out, _ = lstm(packed)
            out.data.pow(2).mean().backward()
    stats = mon.stats()
    a = stats.activations["/l1.forget_gate"]
    assert a.units == 8 and a.unit_total == 2 * (7 + 3 + 5 + 2)          # only the valid steps
    assert "/gates_above_l0" not in stats.not_checked                      # dropout masks replayed
    assert stats.recurrent[""].sequences == [2, 2, 2, 2, 2, 2, 2]


def _fit_without_recurrence():
    model = nn.Linear(3, 2)
    with watch(model, every=1) as mon:
        model(torch.randn(4, 3)).sum().backward()
    return mon.stats()
