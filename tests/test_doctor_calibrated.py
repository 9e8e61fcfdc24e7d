"""The doctor's verdicts on real models under the real monitor, by mechanism (issue 12).

Each test trains or checks a small real model and compares what the monitor saw with a brute-force
reference (which activation outputs multiply a tensor, which input features are near-constant, how
many steps ran in eval mode), then checks the verdict the mechanism implies.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import impediments as imp
from impediments.doctor import checkup
from impediments import watch


def _digits(n=256, standardize=True):
    d = imp.load_dataset("digits", standardize=standardize)
    return d.X_train[:n], d.y_train[:n]


def _flagged(report):
    return {f.code for f in report.findings if f.severity in ("warning", "error")}


def _fit(model, X, y, *, steps, lr=0.05, opt=None, batch=64, every=None, before_forward=None):
    torch.manual_seed(0)
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with watch(model, optimizer=opt, every=every) as mon:
        for step in range(steps):
            i = torch.arange(step * batch, (step + 1) * batch) % len(X)
            if before_forward is not None:
                before_forward(model, step)
            loss = F.cross_entropy(model(X[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return mon.report()


class SEBlock(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 pool(x)))``: the sigmoid is a gate."""

    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.f1, self.f2 = nn.Linear(c, 4), nn.Linear(4, c)
        self.swiglu_gate, self.swiglu_up, self.out = nn.Linear(c, 32), nn.Linear(c, 32), nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x.view(-1, 1, 8, 8))))
        s = torch.sigmoid(self.f2(F.relu(self.f1(h.mean((2, 3))))))
        h = (h * s[:, :, None, None]).mean((2, 3))
        return self.out(F.silu(self.swiglu_gate(h)) * self.swiglu_up(h))         # SwiGLU (Shazeer 2020)


def test_gates_are_seen_and_not_judged_as_hidden_nonlinearities():
    X, y = _digits()
    torch.manual_seed(0)
    model = SEBlock()
    report = _fit(model, X, y, steps=60)
    acts = report.stats.activations
    gates = {n for n, a in acts.items() if a.gate}
    # reference: the calls whose output is multiplied by another tensor in forward()
    assert gates == {"/sigmoid#0", "/silu#0"}, {n: a.gate for n, a in acts.items()}
    assert not acts["/relu#0"].gate and not acts["/relu#1"].gate
    assert "linear_regime" not in report.codes


def test_tanh_gelu_inner_tanh_is_a_gate():
    """GPT-2's ``gelu_new``: 0.5 x (1 + tanh(...)) multiplies x, so its tanh is a gate, not a hidden tanh."""
    import math

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.proj = nn.Linear(64, 256), nn.Linear(256, 10)
            for m in (self.fc, self.proj):
                nn.init.normal_(m.weight, 0.0, 0.02)

        def forward(self, x):
            h = self.fc(x)
            h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
            return self.proj(h)

    X, y = _digits()
    report = checkup(Mlp(), X, y)
    (tanh,) = report.stats.activations.values()
    assert tanh.kind == "tanh" and tanh.gate and tanh.linear_fraction > 0.98
    assert "linear_regime" not in report.codes


class SigmoidHead(nn.Module):
    """A hidden sigmoid, then a one-unit sigmoid head (Keras ``Dense(1, activation="sigmoid")``): as a module, or
    as a function whose output is squeezed (a view) or mapped to [-1, 1] by numbers, as ports write it."""

    def __init__(self, style):
        super().__init__()
        self.style = style
        self.hidden, self.out = nn.Linear(64, 16), nn.Linear(16, 1)
        self.act, self.head = nn.Sigmoid(), nn.Sigmoid()

    def forward(self, x):
        z = self.out(self.act(self.hidden(x)))
        if self.style == "module":
            return self.head(z)
        if self.style == "squeezed":
            return torch.sigmoid(z).squeeze(1)
        return 2 * torch.sigmoid(z) - 1


@pytest.mark.parametrize("style,head", [("module", "head"), ("squeezed", "/sigmoid#0"), ("affine", "/sigmoid#0")])
def test_output_head_is_marked_and_not_judged_as_a_hidden_nonlinearity(style, head):
    X, y = _digits()
    target = (y % 2).float()
    torch.manual_seed(0)
    model = SigmoidHead(style)
    for m in (model.hidden, model.out):                      # small weights: both sigmoids near-linear throughout
        nn.init.normal_(m.weight, 0.0, 1e-3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with watch(model, optimizer=opt) as mon:
        for step in range(60):
            i = torch.arange(step * 64, (step + 1) * 64) % len(X)
            out = model(X[i]).reshape(-1)
            loss = F.mse_loss((out + 1) / 2 if style == "affine" else out, target[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    report = mon.report()
    acts = report.stats.activations
    # reference: the one activation whose output the forward returns (through a view or numbers)
    assert {n for n, a in acts.items() if a.model_output} == {head}
    assert all(a.linear_fraction > 0.98 for a in acts.values())
    [f] = report.by_code("linear_regime")
    assert f.where == ["act"] and f.evidence["output_heads_not_judged"] == [head]
    assert f.severity == "warning" and f.evidence["loss_drop"] < 0.25    # the loss stalls: the cost is shown


def test_model_left_in_eval_is_an_error_and_train_mode_is_not():
    X, y = _digits()

    def bn_mlp():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))

    model = bn_mlp()
    model.eval()                                             # validation ... and no model.train() after it
    report = _fit(model, X, y, steps=15)
    [f] = report.by_code("model_in_eval_mode")
    assert f.severity == "error" and report.findings[0] is f
    assert f.evidence["steps_after_eval_forwards_only"] == 15 and f.evidence["steps_after_training_forwards"] == 0
    assert f.evidence["batchnorm_layers"] == 1 and f.evidence["dropout_layers"] == 1
    # validation forwards in eval mode between training steps are normal use
    def validate_then_train(m, step):
        m.eval()
        with torch.no_grad():
            m(X[:32])
        m.train()
    normal = _fit(bn_mlp(), X, y, steps=15, before_forward=validate_then_train)
    assert "model_in_eval_mode" not in normal.codes
    assert normal.stats.mode.eval_forwards == 15 and normal.stats.mode.trained_steps == 15
    # some steps after eval-only forwards: a warning; eval() on a model without BN or Dropout changes nothing
    half = _fit(bn_mlp(), X, y, steps=10, before_forward=lambda m, s: m.train(s % 2 == 0))
    assert [f.severity for f in half.by_code("model_in_eval_mode")] == ["warning"]
    plain = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    assert [f.severity for f in _fit(plain, X, y, steps=5).by_code("model_in_eval_mode")] == ["info"]


def test_eval_mode_forwards_cost_a_counter_and_change_nothing():
    X, _ = _digits(64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()
    ref = model(X)
    with watch(model) as mon:
        out = model(X)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert mon.activations.meta == {} and mon.mode.meta["eval_forwards"] == 1 and mon.windows.tensors() == 0


def test_batchnorm_conv_net_gradients_are_not_called_exploding():
    """A BN conv stack's d loss / d conv output grows toward the input at init (Yang et al. 2019); its conv
    weights feed BN, so they are scale-invariant and left out; without BN the same trend is judged."""
    def net(bn):
        torch.manual_seed(0)
        layers, c = [], 1
        for _ in range(8):
            layers += [nn.Conv2d(c, 16, 3, padding=1, bias=not bn)] + ([nn.BatchNorm2d(16)] if bn else []) + [nn.ReLU()]
            c = 16
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    X, y = _digits()
    with_bn = checkup(net(True), X, y)
    assert not {"exploding_gradients", "vanishing_gradients"} & _flagged(with_bn)
    assert "feed BatchNorm" in with_bn.skipped["vanishing_gradients"]
    stats = with_bn.stats
    assert {bn.feeding_layer for bn in stats.batchnorm.values()} == {str(i) for i in range(1, 24, 3)}
    assert stats.layers["27"].positions == 1 and stats.layers["1"].positions == 64    # the head after pooling
    without = checkup(net(False), X, y)
    assert "feed BatchNorm" not in without.skipped.get("vanishing_gradients", "")    # judged: nothing left out


def test_sparse_units_over_few_examples_are_not_enough_data_and_dead_ones_are_dead():
    X, y = _digits(48)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 120), nn.ReLU(), nn.Linear(120, 10))
    nn.init.normal_(model[0].bias, -1.2, 0.3)                  # sparse but alive: most units fire on few inputs
    report = checkup(model, X, y)
    a = report.stats.activations["1"]
    pre = model[0](X)
    assert a.unit_active_counts == (pre > 0).sum(0).tolist()        # brute force
    silent = int(((pre > 0).sum(0) == 0).sum())
    assert silent > 0
    assert "dead_units" not in _flagged(report)
    assert "not enough data yet" in report.skipped["dead_units"]
    nn.init.constant_(model[0].bias, -10.0)
    [f] = [f for f in checkup(model, X, y).by_code("dead_units") if f.severity == "error"]
    assert f.evidence["layers"]["1"]["dead_fraction"] == 1.0


def test_loss_transient_is_no_verdict_and_a_learning_rate_too_high_is_the_cause():
    X, y = _digits()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    short = _fit(model, X, y, steps=12, lr=0.05, every=1)
    assert "diverging_loss" not in short.codes and "not enough steps yet" in short.skipped["diverging_loss"]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    hot = _fit(model, X, y, steps=30, lr=1.5, every=1)
    first = hot.findings[0]
    assert first.code == "exploding_gradients" and first.caused_by is None
    consequences = [f for f in hot.findings if f.caused_by == "exploding_gradients"]
    assert consequences and {f.code for f in consequences} <= {"dead_units", "exploding_activations",
                                                               "saturated_units", "diverging_loss", "non_finite",
                                                               "loss_plateau", "vanishing_gradients"}
    assert all(f.remedy.startswith("Caused by exploding_gradients") for f in consequences)
    assert "learning rate" in first.remedy.lower()
    # the update-to-weight ratios behind it, against a brute-force step: |dw| / |w| of the first layer
    assert max(p.update_to_weight for p in hot.stats.params.values()) >= 0.1


def test_near_constant_pixels_are_left_out_of_input_scales():
    d = imp.load_dataset("digits", standardize=False)
    X, y = d.X_train[:512], d.y_train[:512]
    X = (X - X.mean()) / X.std()                               # one global mean and std, as images usually are
    report = checkup(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), X, y)
    assert "unequal_input_scales" not in report.codes
    var, span = X.var(0, unbiased=False), X.amax(0) - X.amin(0)
    varying = var > 1e-12 * var.max()
    near = varying & (var < 0.01 * span ** 2)                  # reference: Var / range^2 < 1%
    keep = varying & ~near
    assert near.sum() > 0 and float(var[varying].max() / var[varying].min()) > 1e3   # the old rule's false alarm
    assert float(var[keep].max() / var[keep].min()) < 1e3
    from impediments.doctor.rules.inputs import split_features

    signal, left_out, _ = split_features(report.stats.inputs, 0.01)
    assert sorted(left_out) == near.nonzero().flatten().tolist() and sorted(signal) == keep.nonzero().flatten().tolist()


def test_the_learning_rate_cause_is_measured_in_the_steps_before_units_died():
    """Update-to-weight ratios averaged over the windows that end before the first with a quarter of a
    layer silent, not over the whole run (after the units died the updates are small: there is no
    gradient left); units already dead at the first forward have no learning-rate cause."""
    from types import SimpleNamespace

    from impediments.doctor.causes import link, onset_step
    from impediments.doctor.rules.base import finding
    from impediments.doctor.thresholds import Thresholds
    from impediments.monitor.schema import ParamStats, Window

    th = Thresholds()
    windows = [Window(0, 4, 2.0, dead_fraction={"1": 0.0}, update_to_weight={"0.weight": 0.3, "0.bias": 5.0}),
               Window(4, 8, 3.0, dead_fraction={"1": 0.1}, update_to_weight={"0.weight": 0.5}),
               Window(8, 12, 3.0, dead_fraction={"1": 1.0}, update_to_weight={"0.weight": 0.001})]
    whole = (0.3 + 0.5 + 0.001) / 3
    params = {"0.weight": ParamStats("0", 1.0, 1.0, 1.0, 1.0, whole, 3)}
    stats = SimpleNamespace(windows=windows, params=params, nonfinite=None, steps=12, sampled_steps=3,
                            layers={}, activations={}, residual_stream={})
    assert onset_step(stats, th) == 8
    dead = finding("dead_units", "error", ["1"], {"dead_fraction": 1.0})
    cause, effect = link([dead], stats, th)
    assert cause.code == "exploding_gradients" and effect.caused_by == "exploding_gradients"
    assert cause.evidence["update_to_weight"] == {"0.weight": pytest.approx(0.4)}      # biases are not judged
    assert cause.evidence["measured_over_steps"] == [0, 8] and "steps 0-7" in cause.evidence["confidence"]
    windows[0].dead_fraction["1"] = 0.5                # dead at the first forward: no update came before
    assert onset_step(stats, th) == 0
    assert [f.code for f in link([dead], stats, th)] == ["dead_units"]
    stats.windows = [Window(w.start_step, w.end_step, 2.0, update_to_weight=w.update_to_weight) for w in windows]
    assert onset_step(stats, th) is None                                   # no onset seen: the whole run
    (cause, _) = link([dead], stats, th)
    assert cause.evidence["update_to_weight"] == {"0.weight": pytest.approx(whole)}
