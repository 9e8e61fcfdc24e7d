"""The doctor on real models under the monitor: each broken setup gets its code, healthy ones get none."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import impediments as imp

from impediments import watch
from impediments.doctor import CODES, checkup
from impediments.train.zoo import FAMILIES, ResNet, digits_mlp, init_weights, zoo  # noqa: E402
from impediments.train.zoo import LINEAR_TYPES as LIN  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    d = imp.load_dataset("digits")
    return d.X_train[:256], d.y_train[:256]


@pytest.fixture(scope="module")
def raw_digits():
    d = imp.load_dataset("digits", standardize=False)
    return d.X_train[:256], d.y_train[:256]


def he(model, *, bias=0.0, scale=1.0):
    torch.manual_seed(0)
    return init_weights(model, "he", bias=bias, scale=scale)


def glorot(model, *, scale=1.0):
    torch.manual_seed(0)
    return init_weights(model, "glorot", scale=scale)


def constant(model, value):
    for p in model.parameters():
        nn.init.constant_(p, value)
    return model


def mlp(depth=3, act="relu", **kw):
    return digits_mlp(depth, width=32, act=act, **kw)


def flagged(report):
    return {f.code for f in report.findings if f.severity in ("warning", "error")}


def train(model, X, y, *, steps=40, lr=0.1, opt=None, batch=64, prepare=None):
    from impediments.cli.spec import train_under_monitor
    from impediments.train import Setup

    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    setup = Setup(model_fn=lambda: model, X=X, y=y, loss_fn=F.cross_entropy, steps=steps, batch_size=batch,
                  prepare=prepare)
    return train_under_monitor(setup, model=model, optimizer=opt).report()


# --------------------------------------------------------------------------------------------- healthy
@pytest.mark.parametrize("make", [lambda: he(mlp()), lambda: glorot(mlp(act="tanh")),
                                  lambda: he(imp.cnn2d((1, 8, 8), 10, width=8, depth=2)),
                                  lambda: he(mlp(depth=3, residual=True, norm="batch"))])
def test_healthy_models_have_no_warning(digits, make):
    X, y = digits
    report = checkup(make(), X, y)
    assert flagged(report) == set(), str(report)
    report = train(make(), X, y, steps=30)
    assert flagged(report) == set(), str(report)
    assert report.exit_code == 0


# --------------------------------------------------------------------------------------------- init-time codes
def test_checkup_dead_units(digits):
    report = checkup(he(mlp(), bias=-5.0), *digits)
    worst = report.by_code("dead_units")[0]
    assert worst.severity == "error" and "hidden3.act" in worst.where
    assert worst.evidence["max_dead_fraction"] >= 0.7
    # brute force: the units reported dead have no positive pre-activation on any input
    model = he(mlp(), bias=-5.0)
    with torch.no_grad():
        h = model.hidden1.act(model.hidden1.linear(digits[0]))
    dead = report.stats.activations["hidden1.act"].dead_units
    assert sorted(dead) == sorted((h.amax(0) == 0).nonzero().flatten().tolist())
    assert report.stats.activations["hidden1.act"].unit_total == len(digits[0])


@pytest.mark.parametrize("value", [0.0, 0.1])
def test_checkup_symmetric_units(digits, value):
    report = checkup(constant(mlp(act="tanh"), value), *digits)
    [f] = report.by_code("symmetric_units")
    assert "hidden1.linear" in f.where and "output" not in f.where
    assert f.evidence["largest_group"] == 32


def test_checkup_saturated_and_linear(digits):
    X, y = digits
    assert "saturated_units" in flagged(checkup(he(mlp(act="sigmoid"), scale=10.0), X, y))
    # near-linear at init is what LeCun et al. 1998 recommend: a checkup says "not checked yet"; a run that stays
    # there past the transient is flagged
    tiny = checkup(glorot(mlp(act="tanh"), scale=0.01), X, y)
    assert "linear_regime" not in flagged(tiny) and "as recommended at init" in tiny.skipped["linear_regime"]
    # (the default schedule samples steps 0-9, then every 50th: step 50 is the first after the transient)
    assert "linear_regime" in flagged(train(glorot(mlp(act="tanh"), scale=0.01), X, y, steps=60, lr=0.1))
    assert "linear_regime" in flagged(train(he(mlp(), scale=0.05, bias=5.0), X, y, steps=60, lr=0.01))


def test_checkup_depth_trends(digits):
    X, y = digits
    report = checkup(he(mlp(depth=8), scale=0.4), X, y)
    assert "vanishing_gradients" in flagged(report)
    # a shrinking forward signal at init is info until a loss trend shows its cost (issue 24: severity by cost)
    [shrink] = report.by_code("vanishing_activations")
    assert shrink.severity == "info" and "no loss trend yet" in shrink.evidence["not_a_warning"]
    assert "exploding_activations" in flagged(checkup(he(mlp(depth=6), scale=2.5), X, y))


def test_checkup_inputs(digits, raw_digits):
    # raw digits are uncentered; their tiny-variance features are border pixels, ink on under 1% of the
    # examples (near-constant: no signal, not an unequal scale). Features in different units are.
    raw = checkup(he(mlp()), *raw_digits)
    assert "uncentered_inputs" in flagged(raw) and "unequal_input_scales" not in flagged(raw)
    assert "unequal_input_scales" in flagged(checkup(he(mlp()), digits[0] * torch.logspace(0, 2, 64), digits[1]))
    assert "uncentered_inputs" in flagged(checkup(he(mlp()), digits[0] + 3.0, digits[1]))


def test_checkup_non_finite_names_first_layer(digits):
    X, y = digits
    X = X.clone()
    X[3, 5] = float("nan")
    [f] = checkup(he(mlp()), X, y).by_code("non_finite")
    assert f.severity == "error" and f.evidence["step"] >= 0 and f.where


def test_checkup_batchnorm_misuse(digits):
    X, y = digits
    drop = nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.5), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    [f] = checkup(he(drop), X, y).by_code("dropout_before_bn")
    assert f.where == ["1", "2"]
    assert "bn_small_batch" in flagged(checkup(he(mlp(norm="batch")), X[:4], y[:4]))
    model = he(mlp(norm="batch"))
    model.hidden2.norm.eval()
    assert "bn_inference_mode_in_training" in flagged(checkup(model, X, y))


def test_checkup_leaves_model_untouched(digits):
    model = he(mlp(norm="batch")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkup(model, *digits)
    assert not model.training and all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


# --------------------------------------------------------------------------------------------- training-time codes
def test_training_codes(digits):
    X, y = digits
    report = train(he(mlp(norm="batch")), X, y, opt=None, steps=20, lr=0.05)
    assert "weight_decay_with_bn" not in report.codes
    model = he(mlp(norm="batch"))
    report = train(model, X, y, steps=20, opt=torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=5e-4))
    [f] = report.by_code("weight_decay_with_bn")
    assert f.severity == "info" and "hidden1.linear" in f.where
    assert "diverging_loss" in train(he(mlp()), X, y, lr=200.0, steps=30).codes
    assert "loss_plateau" in train(he(mlp()), X, y, lr=1e-7, steps=60).codes
    frozen = train(he(mlp(norm="batch")), X, y, steps=10, prepare=lambda m: imp.norm.freeze(m.hidden1))
    assert {f.severity for f in frozen.by_code("bn_inference_mode_in_training")} == {"info"}


def test_training_without_loss_skips_loss_rules(digits):
    X, y = digits
    model = he(mlp())
    with watch(model) as mon:
        for _ in range(3):
            F.cross_entropy(model(X), y).backward()
    report = mon.report()
    assert "diverging_loss" in report.skipped and "loss_plateau" in report.skipped


# --------------------------------------------------------------------------------------------- real models
class FunctionalCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x.view(-1, 1, 8, 8)))
        x = torch.sigmoid(self.conv2(x)) - 0.5
        return self.fc(x.mean((2, 3)))


class TransformerBlock(nn.Module):
    def __init__(self, d=16, heads=2):
        super().__init__()
        self.embed = nn.Linear(4, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.embed(x.view(len(x), 16, 4))
        a = self.ln1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        h = h + self.ff(self.ln2(h))
        return self.head(h.mean(1))


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.cls, self.aux = nn.Linear(32, 10), nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return {"logits": self.cls(h), "aux": self.aux(h)}


class TupleOut(DictOut):
    def forward(self, x):
        out = super().forward(x)
        return out["logits"], out["aux"]


def _dict_loss(out, y):
    return F.cross_entropy(out["logits"], y) + out["aux"].pow(2).mean()


@pytest.mark.parametrize("name,make,loss_fn,where", [
    ("functional_cnn", lambda: he(FunctionalCNN()), None, "conv1"),
    ("inplace_relu", lambda: he(nn.Sequential(nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Linear(32, 10))), None,
     "0"),
    ("resnet_bn", lambda: he(ResNet(c=8)), None, "layer1.0.conv1"),
    ("transformer", lambda: glorot(TransformerBlock()), None, "ff.0"),
    ("dict_out", lambda: he(DictOut()), _dict_loss, "body.0"),
    ("tuple_out", lambda: he(TupleOut()), lambda o, y: F.cross_entropy(o[0], y), "body.0"),
])
def test_doctor_on_real_models(digits, name, make, loss_fn, where):
    X, y = digits
    model = make()
    report = checkup(model, X, y, loss_fn)
    names = dict(model.named_modules())
    for f in report.findings:
        assert all(w in names or "/" in w or w in ("input", "loss") or w in dict(model.named_parameters())
                   for w in f.where), f
    stats = report.stats
    assert where in stats.layers, sorted(stats.layers)
    assert stats.activations, "no activations seen"
    assert flagged(report) == set(), str(report)      # each is initialized sensibly: nothing to flag


def test_partly_frozen_model(digits):
    X, y = digits
    model = he(mlp())
    for p in model.hidden1.parameters():
        p.requires_grad_(False)
    report = train(model, X, y, steps=20, opt=torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                                              lr=0.1))
    assert flagged(report) == set(), str(report)
    assert "hidden1.linear.weight" not in report.stats.params or report.stats.params[
        "hidden1.linear.weight"].samples == 0


@pytest.mark.parametrize("make", [
    lambda: he(FunctionalCNN(), bias=-10.0),                                                 # F.relu
    lambda: he(nn.Sequential(nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Linear(32, 10)), bias=-10.0),
    lambda: he(DictOut(), bias=-10.0),
])
def test_dead_units_found_through_functional_inplace_and_dict_models(digits, make):
    X, y = digits
    model = make()
    loss_fn = _dict_loss if isinstance(model, DictOut) else None
    [f] = [f for f in checkup(model, X, y, loss_fn).by_code("dead_units") if f.severity == "error"]
    first = f.where[0]
    assert first.split("/")[0] in dict(model.named_modules())
    # brute force on the first Linear/Conv feeding that ReLU: units (channels) never (or almost never) positive
    layer = next(m for m in model.modules() if isinstance(m, LIN))
    with torch.no_grad():
        z = layer(X.view(-1, 1, 8, 8) if isinstance(layer, nn.Conv2d) else X)
    z = z.transpose(0, 1).reshape(z.shape[1], -1)             # units x values
    active = (z > 0).sum(1)
    ev = f.evidence["layers"][first]
    assert ev["dead_units"] == int((active == 0).sum())
    assert ev["nearly_dead_units"] == int(((active > 0) & (active <= 1e-3 * z.shape[1])).sum())


# --------------------------------------------------------------------------------------------- the zoo
def test_zoo_catalogue_covers_every_code():
    """The benchmark's zoo (built lazily, nothing trained here): unique names, known codes, every code covered."""
    setups = zoo()
    assert len({s.name for s in setups}) == len(setups)
    assert {s.family for s in setups} == set(FAMILIES)
    healthy = [s for s in setups if not s.expected]
    assert {s.family for s in healthy} == set(FAMILIES), "a healthy setup per family"
    assert all(s.expected <= set(CODES) for s in setups), [s.name for s in setups if not s.expected <= set(CODES)]
    assert set().union(*(s.expected for s in setups)) == set(CODES), "every code has a broken setup"
    assert all(s.steps is None or s.steps >= 1 for s in setups)


def test_zoo_resnet_dropout_before_bn(digits):
    X, y = digits
    plain = he(ResNet())
    assert [type(m).__name__ for m in plain.stem] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert flagged(checkup(plain, X, y)) == set()
    [f] = checkup(he(ResNet(dropout_before_bn=True)), X, y).by_code("dropout_before_bn")
    assert f.where == ["stem.1", "stem.2"]
