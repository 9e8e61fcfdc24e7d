"""False alarms of the transformers sweep (issue 25), each fixed by its mechanism, on small models that
reproduce that mechanism, each beside the fault the rule must still find:

* a parameter held directly by a container module that forward does not use (XLNet's ``mask_emb``):
  not a cut; a cut inside the container still carries the container's own parameter;
* a ReLU whose input is the same for every example of a call (MarkupLM's xpath embeddings fed the
  padding tag): not checked, where a layer killed by its bias is still dead;
* a depth profile shaped like a V (MobileViT: BatchNorm'd stem shrinking, LayerNorm'd blocks reset): no
  trend, where a stack whose variance grows by a constant factor per layer is still exploding;
* a zero-init router whose unselected rows get no gradient (AFMoE): not symmetric, where a constant-init
  hidden layer still is.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments.doctor import Thresholds, diagnose
from impediments.doctor.checkup import checkup
from impediments.doctor.fractions import dead_count
from impediments.doctor.rules.base import geometric_ratio
from impediments.monitor import Monitor


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n=128, d=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, d, generator=g) * 2
    return centers[y] + torch.randn(n, d, generator=g), y


def train(model, steps=20, lr=0.05):
    X, y = blobs()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Monitor(model, optimizer=opt, every=1) as mon:
        for _ in range(steps):
            loss = F.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return diagnose(mon.stats()), mon.stats()


# ------------------------------------------------------------------------ container parameters (XLNet)
class UnusedTable(nn.Module):
    """A model-level table forward never reads (XLNet's mask_emb outside two-stream pre-training)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mask_emb = nn.Parameter(torch.randn(1, 1, 8) * 0.02)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


class CutWithScale(nn.Module):
    """A real cut: the first layer's output (times the container's own scale) is detached."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.scale = nn.Parameter(torch.ones(16))
        self.first, self.head = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.head(torch.relu(self.first(x) * self.scale).detach())


def test_an_unused_parameter_of_a_container_is_not_a_cut():
    report, _ = train(UnusedTable(), steps=6)
    [f] = report.by_code("parameters_without_gradient")
    assert f.severity == "info"
    assert f.evidence["container_parameters_not_placed"] == ["mask_emb"]


def test_a_cut_inside_a_container_still_carries_its_own_parameter():
    report, _ = train(CutWithScale(), steps=6)
    [f] = [f for f in report.by_code("parameters_without_gradient") if f.severity == "warning"]
    assert set(f.evidence["parameters"]) == {"scale", "first.weight", "first.bias"}


# ------------------------------------------------------------------------ one input per call (MarkupLM)
class ConstantBranch(nn.Module):
    """A ReLU branch fed the same vector for every example (a padding id), added to a working body."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tag = nn.Embedding(4, 8)
        self.inner, self.act, self.out = nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3)
        self.body = nn.Linear(8, 3)

    def forward(self, x):
        pad = torch.zeros(len(x), dtype=torch.long)           # the input the caller did not pass
        return self.body(x) + self.out(self.act(self.inner(self.tag(pad))))


class DeadByBias(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner, self.act, self.out = nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3)
        with torch.no_grad():
            self.inner.bias[:48] = -50.0                     # 48 of 64 units below zero for every input

    def forward(self, x):
        return self.out(self.act(self.inner(x)))


def test_a_relu_fed_one_input_per_call_is_not_judged_dead():
    report, stats = train(ConstantBranch(), steps=10)
    a = stats.activations["act"]
    per_call = a.unit_total // a.samples
    assert per_call == 128 and a.dead_units                          # about half the units never fire
    assert all(c % per_call == 0 for c in a.unit_active_counts)      # all or none per call, as measured:
    assert a.unit_varied_calls == [0] * a.units                      # one pre-activation value per unit and call
    count = dead_count(a, Thresholds())
    assert count.one_input_per_call and not count.sure and count.fraction == 0.0
    assert not report.by_code("dead_units")
    assert "did not vary" in report.skipped["dead_units"] and "act" in report.skipped["dead_units"]


def test_a_layer_killed_by_its_bias_is_still_dead():
    report, stats = train(DeadByBias(), steps=10)
    varied = stats.activations["act"].unit_varied_calls
    assert all(v == stats.activations["act"].samples for v in varied)  # dead or not, every unit's input varies
    [f] = report.by_code("dead_units")
    assert f.severity == "error" and f.evidence["layers"]["act"]["dead_units"] == 48


# ------------------------------------------------------------------------ a V-shaped depth profile (MobileViT)
class Stack(nn.Module):
    """ReLU layers whose pre-activation std is multiplied by ``gains[i]`` at layer i (weights scaled by the
    gain over sqrt(fan_in)); ``reset_at`` puts a LayerNorm before that layer (the scale starts again at 1)."""

    def __init__(self, gains, reset_at=None, width=32):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(nn.Linear(8 if i == 0 else width, width, bias=False) for i in range(len(gains)))
        for lin, g in zip(self.layers, gains):
            nn.init.normal_(lin.weight, 0.0, g / lin.in_features ** 0.5)
        self.reset_at = reset_at
        self.norm = nn.LayerNorm(width, eps=1e-20, elementwise_affine=False)   # renormalizes even tiny inputs
        self.acts = nn.ModuleList(nn.ReLU() for _ in gains)
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        for i, (lin, act) in enumerate(zip(self.layers, self.acts)):
            if i == self.reset_at:
                x = self.norm(x)
            x = act(lin(x)) if i else act(lin(x / 4))        # first pre-activation std about 1/2 for blobs
        return self.head(x)


def test_a_v_shaped_profile_is_not_a_trend():
    # down 5 decades a layer for 3 layers, a LayerNorm, He-scaled layers that keep the variance, a small last
    # layer: the least-squares line points up by far more than the threshold, the last sits below the first
    model = Stack([1.0, 0.01, 0.01, 0.01] + [2 ** 0.5] * 5 + [0.2], reset_at=4)
    report = checkup(model, *blobs(), loss_fn=F.cross_entropy)
    variances = [report.stats.activations[f"acts.{i}"].input.var for i in range(10)]
    assert variances[3] < variances[0] * 1e-4 and variances[-1] < variances[0]
    assert geometric_ratio(variances) > Thresholds().activation_var_ratio
    assert not report.by_code("exploding_activations")


def test_a_geometric_growth_is_still_exploding():
    report = checkup(Stack([1.0] + [3.0] * 5), *blobs(), loss_fn=F.cross_entropy)
    [f] = report.by_code("exploding_activations")
    assert f.severity == "warning" and f.evidence["last_variance"] > f.evidence["first_variance"]


# ------------------------------------------------------------------------ a zero-init router (AFMoE)
class Routed(nn.Module):
    """Top-1 routing over 4 experts by a zero-init router: ties pick expert 0, the others get no gradient."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.router = nn.Linear(8, 4, bias=False)
        nn.init.zeros_(self.router.weight)
        self.experts = nn.ModuleList(nn.Linear(8, 3) for _ in range(4))

    def forward(self, x):
        scores = self.router(x).sigmoid()
        weight, index = scores.topk(1, dim=-1)
        outs = torch.stack([e(x) for e in self.experts], 1)            # (batch, experts, classes)
        return weight * outs.gather(1, index[:, :, None].expand(-1, 1, 3)).squeeze(1)


class ConstantHidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.act, self.out = nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)
        for p in self.parameters():
            nn.init.constant_(p, 0.1)

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


def test_unselected_rows_of_a_zero_init_router_are_not_symmetric_units():
    model = Routed()
    X, y = blobs()
    F.cross_entropy(model(X), y).backward()
    grad = model.router.weight.grad
    picked = grad.abs().sum(1) > 0
    assert picked.sum() == 1                                          # only the picked expert's row learns
    model.zero_grad()
    assert not checkup(model, X, y, loss_fn=F.cross_entropy).by_code("symmetric_units")


def test_a_constant_init_hidden_layer_is_still_symmetric():
    [f] = checkup(ConstantHidden(), *blobs(), loss_fn=F.cross_entropy).by_code("symmetric_units")
    assert f.where == ["hidden"] and f.evidence["largest_group"] == 16


# ------------------------------------------------------------------------ transformers' Conv1D (GPT-2)
def test_a_transposed_linear_is_recorded_with_its_fan_in_and_its_units():
    from transformers.pytorch_utils import Conv1D

    from impediments.monitor.probes.layers import TransposedLinear, fan_in

    class TwoConv1D(nn.Module):
        def __init__(self, std):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b, self.c, self.head = Conv1D(32, 8), Conv1D(32, 32), Conv1D(32, 32), nn.Linear(32, 3)
            for m in (self.a, self.b, self.c):
                nn.init.normal_(m.weight, 0.0, std)

        def forward(self, x):
            return self.head(torch.tanh(self.c(torch.tanh(self.b(torch.tanh(self.a(x)))))))

    model = TwoConv1D(1.0)
    assert isinstance(model.a, TransposedLinear) and not isinstance(model.head, TransposedLinear)
    assert (fan_in(model.a), fan_in(model.b)) == (8, 32)
    X, y = blobs()
    report = checkup(model, X, y, loss_fn=F.cross_entropy)
    layer = report.stats.layers["b"]
    assert layer.kind == "Linear" and layer.fan_in == 32
    # brute force: Var(y) / mean(x^2) of b at init, against fan_in * var(W) = 32
    with torch.no_grad():
        x = torch.tanh(model.a(X))
        gain = model.b(x).var().item() / x.pow(2).mean().item()
    [f] = report.by_code("init_scale_too_large")
    assert f.evidence["gain_by_layer"]["b"] == pytest.approx(gain, rel=1e-3) and gain == pytest.approx(32, rel=0.3)
    # symmetry: a unit is a weight column (nf units), identical columns are found
    sym = TwoConv1D(0.02)
    with torch.no_grad():
        sym.b.weight[:] = sym.b.weight[:, :1]                 # every output unit of b gets column 0's weights
        sym.b.bias.zero_()
        sym.c.weight[:] = sym.c.weight[:1]                    # and c reads every unit of b alike (rows = inputs)
    [s] = checkup(sym, X, y, loss_fn=F.cross_entropy).by_code("symmetric_units")
    assert s.where == ["b"] and s.evidence["largest_group"] == 32 and s.evidence["units"] == 32


# ------------------------------------------------------------------------ soft-capped scores between MLPs (Gemma 2)
class SoftCapped(nn.Module):
    """Blocks of a soft-capped score ``c tanh(s / c)`` (Gemma 2's attention logits, c = 50) and a GELU MLP, then a
    soft-capped output (c = 30): the tanh sees its input divided by the cap, the GELU a hidden pre-activation."""

    def __init__(self, blocks=2, width=16, growth=1.0):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(nn.ModuleDict({"score": nn.Linear(width, width), "up": nn.Linear(width, width),
                                                   "act": nn.GELU()}) for _ in range(blocks))
        for i, block in enumerate(self.layers):
            nn.init.normal_(block["score"].weight, 0.0, 0.002)    # small scores, as q.k at initializer_range 0.02
            nn.init.zeros_(block["score"].bias)
            nn.init.normal_(block["up"].weight, 0.0, growth ** i / width ** 0.5)
        self.inp, self.head = nn.Linear(8, width), nn.Linear(width, 3)

    def forward(self, x):
        x = self.inp(x)
        for block in self.layers:
            x = x + torch.tanh(block["score"](x) / 50.0) * 50.0
            x = x + block["act"](block["up"](x))
        return torch.tanh(self.head(x) / 30.0) * 30.0


def test_soft_caps_between_mlps_are_not_a_growth_with_depth():
    report = checkup(SoftCapped(), *blobs(), loss_fn=F.cross_entropy)
    chain = [(n, a.input.var) for n, a in report.stats.activations.items()]
    assert len(chain) == 5 and {a.kind for a in report.stats.activations.values()} == {"tanh", "gelu"}
    assert geometric_ratio([v for _, v in chain]) > Thresholds().activation_var_ratio    # the plain line: growth
    assert not report.by_code("exploding_activations")


def test_within_role_ratio_is_the_fixed_effects_least_squares_slope():
    from impediments.doctor.rules.activations import _within_role_ratio, activation_role
    g = torch.Generator().manual_seed(3)
    names = [f"layers.{i}/{k}" for i in range(4) for k in ("tanh#0", "gelu#0")] + ["/tanh#0"]
    kinds = [n.split("/")[1][:4] for n in names]
    depths = list(range(len(names)))
    values = (torch.rand(len(names), generator=g, dtype=torch.float64) * 10).exp().tolist()
    roles = [activation_role(n, k) for n, k in zip(names, kinds)]
    assert len(set(roles)) == 3
    # brute force: least squares on [depth, one indicator column per role]
    design = torch.tensor([[float(d)] + [float(r == q) for q in sorted(set(roles))] for d, r in zip(depths, roles)],
                          dtype=torch.float64)
    coef = torch.linalg.lstsq(design, torch.tensor(values, dtype=torch.float64).log()[:, None]).solution
    expected = float((coef[0, 0] * (len(names) - 1)).exp())
    assert _within_role_ratio(list(zip(names, values)), depths, roles) == pytest.approx(expected, rel=1e-9)
    one = ["a"] * len(names)                                     # one role: the plain fit
    assert _within_role_ratio(list(zip(names, values)), depths, one) == pytest.approx(geometric_ratio(values))


def test_growth_within_each_role_is_still_exploding():
    report = checkup(SoftCapped(blocks=4, growth=12.0), *blobs(), loss_fn=F.cross_entropy)
    [f] = report.by_code("exploding_activations")
    assert f.severity == "warning"


# ------------------------------------------------------------------------ weight-standardized convolutions (BiT)
class StandardizedConv(nn.Conv2d):
    """A convolution that applies its weight standardized per filter, (W - mean) / std (BiT's convs)."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.var((1, 2, 3), keepdim=True, unbiased=False) + 1e-8).sqrt()
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def conv_stack(conv=nn.Conv2d, std=None, depth=4, width=8):
    torch.manual_seed(0)
    layers = []
    for i in range(depth):
        c = conv(3 if i == 0 else width, width, 3, padding=1)
        nn.init.kaiming_normal_(c.weight) if std is None else nn.init.normal_(c.weight, 0.0, std)
        layers += [c, nn.GroupNorm(2, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 3))


def images(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_a_weight_standardized_conv_is_not_an_init_scale():
    model = conv_stack(StandardizedConv)
    report = checkup(model, *images(), loss_fn=F.cross_entropy)
    layers = report.stats.layers
    conv = layers["3"]                                             # the second conv: fan_in 8 * 3 * 3 = 72
    w = model[3].weight.detach().double()
    assert conv.weight_at_init.mean == pytest.approx(float(w.mean()), abs=1e-7)
    assert conv.weight_at_init.var == pytest.approx(float(w.var(unbiased=False)), rel=1e-5)
    x2 = conv.input_at_init.var + conv.input_at_init.mean ** 2
    assert conv.output_at_init.var / x2 > Thresholds().init_gain_too_large       # it applies unit-variance weights
    assert not report.by_code("init_scale_too_large")


def test_plain_convs_at_std_one_are_still_an_init_scale():
    report = checkup(conv_stack(std=1.0), *images(), loss_fn=F.cross_entropy)
    [f] = report.by_code("init_scale_too_large")
    assert f.severity == "error" and not f.evidence["not_counted_transformed_weight"]
