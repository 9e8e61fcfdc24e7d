"""learning_rate_too_low and no_nonlinearity (issue 24): small real runs on digits and a sine, against the
mechanism each finding names; :data:`ACTING` moves their thresholds (``tests/test_one_source.py`` lists them)."""
from __future__ import annotations

import functools
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments.data import load_dataset
from impediments.doctor import Thresholds, diagnose
from impediments.doctor.rules.learning_rate import _other_cause, input_layer_update
from impediments.doctor.rules.linearity import affine_stack
from impediments.doctor.rules.loop import lr_collapsed_at
from impediments.monitor import Monitor
from impediments.monitor.schedule import default_schedule


@functools.lru_cache(maxsize=1)
def _digits():
    d = load_dataset("digits")
    return d.X_train[:960], d.y_train[:960]


def _train(model, opt, X, y, loss_fn, steps, batch=32, scheduler=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with Monitor(model, optimizer=opt) as mon:
        for step in range(steps):
            idx = torch.randint(0, len(X), (batch,), generator=gen)
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            mon.record_loss(loss)
            if scheduler is not None:
                scheduler.step()
    return mon.stats()


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@functools.lru_cache(maxsize=None)
def _digits_run(lr: float, schedule: str = "constant", labels: str = "paired"):
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = 60
    factor = {"constant": None,
              "warmup": lambda s: (s + 1) / 200,                   # a warm-up longer than the run
              "decay": lambda s: 1.0 if s < 40 else 0.01,
              "early_drop": lambda s: 1.0 if s < 10 else 0.001,
              "short_warmup": lambda s: min(1.0, (s + 1) / 5), "cosine": None}[schedule]
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor) if factor else None
    if schedule == "cosine":          # annealed to zero over the run: low only at its end, not collapsed early
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    X, y = _digits()
    if labels == "shuffled":
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    return _train(model, opt, X, y, F.cross_entropy, steps, scheduler=scheduler)


def _codes(stats, th=None):
    return {f.code: f.severity for f in diagnose(stats, th).findings}


# ------------------------------------------------------------------------------------------------ learning rate
def test_the_input_layers_update_ratio_against_the_steps_measured_by_hand():
    """Brute force: ||W_{t+1} - W_t|| / ||W_t|| of the first Linear at every step, measured in this loop; the statistic
    is the largest window mean over the sampled steps (and the run mean over them), as the monitor samples them."""
    X, y = _digits()
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    gen, by_hand = torch.Generator().manual_seed(0), []
    with Monitor(model, optimizer=opt) as mon:
        for _ in range(60):
            idx = torch.randint(0, len(X), (32,), generator=gen)
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            before = model[0].weight.detach().clone()
            opt.step()
            mon.record_loss(loss)
            by_hand.append(float((model[0].weight.detach() - before).norm() / before.norm()))
    stats = mon.stats()
    sampled = [t for t in range(60) if default_schedule(t)]
    means = [statistics.mean(by_hand[t] for t in sampled if w.start_step <= t < w.end_step) for w in stats.windows
             if any(w.start_step <= t < w.end_step for t in sampled)]
    reference = max(means + [statistics.mean(by_hand[t] for t in sampled)])
    name, ratio = input_layer_update(stats)
    assert name == "0.weight" and ratio == pytest.approx(reference, rel=1e-5)
    assert len(means) >= 3 and max(by_hand) < 1e-3        # every step under lr_low_update, not only the statistic


def test_a_rate_a_hundred_times_too_low_is_named_with_the_input_layers_steps():
    stats = _digits_run(1e-5)
    name, ratio = input_layer_update(stats)
    report = diagnose(stats)
    [f] = report.by_code("learning_rate_too_low")
    assert f.severity == "warning" and report.findings[0].code == "learning_rate_too_low"
    assert f.evidence["input_layer"] == name == "0.weight" and f.evidence["largest_window_update_to_weight"] == ratio
    assert f.evidence["reference"] == "label entropy" and f.evidence["loss_shed"] < 0.1
    # the reference: the labels' entropy, computed here from the training labels (the run counts the batches it drew)
    _, y = _digits()
    p = torch.bincount(y, minlength=10).double() / len(y)
    assert f.evidence["reference_loss"] == pytest.approx(float(-(p * p.log()).sum()), rel=0.02)
    plateau = report.by_code("loss_plateau")
    assert all(p.caused_by == "learning_rate_too_low" for p in plateau)


def _vetoed_run(kind: str):
    """Digits at Adam 1e-5 (a rate too low), with something else that holds the loss."""
    torch.manual_seed(0)
    model = _mlp()
    if kind == "probabilities":         # cross_entropy fed a softmax: the gradient reaching the logits is attenuated
        model.append(nn.Softmax(dim=1))
    elif kind == "init_scale":          # std-1 weights: a 64-wide layer multiplies the variance by 64 (3 layers)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0)
    elif kind == "dead":                # 56 of the 64 hidden ReLUs silent for every input (the output still varies)
        with torch.no_grad():
            model[0].bias[:56] = -100.0
    X, y = _digits()
    return _train(model, torch.optim.Adam(model.parameters(), lr=1e-5), X, y, F.cross_entropy, 60)


@pytest.mark.parametrize("kind, cause, code", [
    ("probabilities", "fed probabilities", "softmax_before_loss"),
    ("init_scale", "init scale is too large", "init_scale_too_large"),
    ("dead", "units of 1 are dead", "dead_units"),
])
def test_another_cause_of_a_still_loss_is_named_instead_of_the_rate(kind, cause, code):
    stats = _vetoed_run(kind)
    th = Thresholds()
    why = _other_cause(stats, th)
    assert why is not None and cause in why, why
    codes = _codes(stats)
    assert "learning_rate_too_low" not in codes and code in codes, codes
    # the steps are as small as in the plain slow run: only the other cause keeps the rate from being named
    assert input_layer_update(stats)[1] < th.lr_low_update


def test_the_usual_rate_is_quiet():
    codes = _codes(_digits_run(1e-3))
    assert "learning_rate_too_low" not in codes and "loss_plateau" not in codes


def test_a_warmup_longer_than_the_run_is_not_checked_and_a_decay_at_the_end_is_quiet():
    warm = diagnose(_digits_run(1e-4, "warmup"))     # its steps small, but still growing at the end
    assert not warm.by_code("learning_rate_too_low")
    assert any("still rising" in why for key, why in warm.skipped.items() if "learning_rate_too_low" in key)
    # a 5-step warm-up to a rate too low is over long before the end: named (gpt2's recipe in calibration)
    assert _codes(_digits_run(1e-5, "short_warmup")).get("learning_rate_too_low") == "warning"
    # 40 steps at 1e-3, then 1e-5: the last windows' steps are tiny, the largest window's are not
    assert "learning_rate_too_low" not in _codes(_digits_run(1e-3, "decay"))


def test_a_cosine_schedule_to_zero_is_not_a_collapse_and_still_shows_a_rate_too_low():
    stats = _digits_run(1e-5, "cosine")
    # the schedule's own values (closed form): 1e-5 * (1 + cos(pi t / 60)) / 2 reaches max/100 only at step 57 of 60
    first_low = next(t for t in range(61) if (1 + math.cos(math.pi * t / 60)) / 2 <= 1 / 100)
    assert first_low == 57 and first_low > Thresholds().lr_collapse_fraction * 60
    [group] = stats.loop.learning_rates
    assert group["below"][1] - group["first_step"] == first_low        # the monitor's record agrees
    assert group["last"] <= group["max"] / 100 and lr_collapsed_at(group, stats.loop.optimizer_steps, Thresholds()) is None
    codes = _codes(stats)
    assert codes.get("learning_rate_too_low") == "warning" and "learning_rate_collapsed" not in codes
    # the same predicate still calls a collapse early in the run (1e-3 for 10 steps, then 1e-5)
    assert "learning_rate_collapsed" in _codes(_digits_run(1e-3, "early_drop"))


def test_shuffled_labels_at_the_usual_rate_stay_uninformative_labels_and_a_slow_run_is_not_called_that():
    assert _codes(_digits_run(1e-3, labels="shuffled")).get("uninformative_labels") == "warning"
    slow = _codes(_digits_run(1e-5))
    assert "uninformative_labels" not in slow and slow["learning_rate_too_low"] == "warning"
    # Adam at 1e-4: the input layer steps about 1.2e-3 of itself, 7% in 60 steps; the loss still falls ~1% a third
    assert "uninformative_labels" not in _codes(_digits_run(1e-4))


# ------------------------------------------------------------------------------------------------ no nonlinearity
def _sine():
    x = torch.linspace(-3, 3, 512).unsqueeze(1)
    return x, torch.sin(2 * x)


@functools.lru_cache(maxsize=None)
def _sine_run(kind: str, steps: int = 150, lr: float = 1e-2):
    torch.manual_seed(0)
    hidden = {"linear": [nn.Linear(1, 32), nn.Linear(32, 32)],
              "tanh": [nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh()],
              "dropout": [nn.Linear(1, 32), nn.Dropout(0.1), nn.Linear(32, 32)],
              "bottleneck": [nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 4), nn.Linear(4, 32), nn.Tanh()],
              "single": []}[kind]
    model = nn.Sequential(*hidden, nn.Linear(32 if hidden else 1, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X, y = _sine()
    return model, _train(model, opt, X, y, F.mse_loss, steps)


def test_stacked_linears_are_one_affine_map_and_settle_at_the_least_squares_line():
    model, stats = _sine_run("linear")
    assert affine_stack(stats, Thresholds()) == ["0", "1", "2"]
    # the stack is one affine map: (W3 W2 W1) x + (W3 (W2 b1 + b2) + b3), checked against the model
    (l1, l2, l3), x = list(model), torch.linspace(-3, 3, 7).unsqueeze(1)
    with torch.no_grad():
        W = l3.weight @ l2.weight @ l1.weight
        b = l3.weight @ (l2.weight @ l1.bias + l2.bias) + l3.bias
        torch.testing.assert_close(model(x), x @ W.T + b)
        # and it settled near the least-squares line's MSE, the best any affine map scores (closed form)
        X, y = _sine()
        A = torch.cat([X, torch.ones_like(X)], 1)
        best = float(((A @ torch.linalg.lstsq(A, y).solution - y) ** 2).mean())
        assert best <= float(F.mse_loss(model(X), y)) < 1.2 * best
    [f] = diagnose(stats).by_code("no_nonlinearity")
    assert f.severity == "warning" and f.where == ["0", "1", "2"] and f.evidence["settled"]


@functools.lru_cache(maxsize=None)
def _regression_run(steps: int):
    """Three stacked Linears on y = A x + b + noise (a task an affine map fits), Adam 1e-2."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(512, 8, generator=gen)
    A, b = torch.randn(8, 4, generator=gen), torch.randn(4, generator=gen)
    y = X @ A + b + 0.01 * torch.randn(512, 4, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 4))
    return (X, y), _train(model, torch.optim.Adam(model.parameters(), lr=1e-2), X, y, F.mse_loss, steps)


@pytest.mark.parametrize("steps", [150, 400])
def test_a_linear_regression_through_stacked_linears_is_info_its_cost_not_shown(steps):
    (X, y), stats = _regression_run(steps)
    # the least-squares fit (closed form) leaves only the noise: an affine map fits this task
    A = torch.cat([X, torch.ones(len(X), 1)], 1)
    best = float(((A @ torch.linalg.lstsq(A, y).solution - y) ** 2).mean())
    assert best < 2e-4 and best < 1e-3 * stats.loss.first
    [f] = diagnose(stats).by_code("no_nonlinearity")
    assert f.severity == "info" and f.evidence["loss_drop"] > 0.99, f.evidence
    assert f.evidence["loss_drop"] >= Thresholds().trains_loss_drop
    if steps == 400:         # settled at the best affine fit, and that fit is the task: still info
        assert f.evidence["settled"] and "not_a_warning" in f.evidence


def test_the_sine_through_stacked_linears_settles_with_most_of_its_loss_left():
    _, stats = _sine_run("linear")
    # closed form: the best line explains R^2 = 1 - MSE_lstsq / Var(y) of sin(2x) on [-3, 3], under a quarter
    X, y = _sine()
    A = torch.cat([X, torch.ones_like(X)], 1)
    r2 = 1 - float(((A @ torch.linalg.lstsq(A, y).solution - y) ** 2).mean()) / float(y.var(unbiased=False))
    [f] = diagnose(stats).by_code("no_nonlinearity")
    assert f.evidence["settled"] and f.evidence["loss_drop"] == pytest.approx(r2, abs=0.1)
    assert r2 < Thresholds().trains_loss_drop and f.severity == "warning"
    # against its first loss (1.36, a far-off init) it shed 68%: that start is not the cost of the affine fit
    assert 1 - stats.loss.window_means[-1] / stats.loss.first > Thresholds().trains_loss_drop


@pytest.mark.parametrize("loss_fn, best_constant", [
    (F.mse_loss, lambda y: float(((y - y.mean()) ** 2).mean())),                   # the targets' variance
    (F.l1_loss, lambda y: float(min((y - c).abs().mean() for c in y))),          # brute force over candidates
])
def test_the_best_constant_predictions_loss_against_brute_force(loss_fn, best_constant):
    X, y = _sine()                       # full batch: every sampled call sees the same 512 targets
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Monitor(model, optimizer=opt) as mon:
        for _ in range(20):
            opt.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    stats = mon.stats()
    [call] = stats.loop.losses.values()
    # an L1's best constant is any median; the monitor takes torch's, the brute force tries every target value
    assert call.constant_loss == pytest.approx(best_constant(y), rel=1e-5)


def test_a_loss_still_falling_gets_info_only():
    _, stats = _sine_run("linear", steps=60, lr=3e-4)
    [f] = diagnose(stats).by_code("no_nonlinearity")
    assert f.severity == "info"


@pytest.mark.parametrize("kind", ["tanh", "dropout", "bottleneck", "single"])
def test_a_nonlinear_net_a_dropout_between_a_bottleneck_pair_or_one_layer_is_not_called_linear(kind):
    _, stats = _sine_run(kind)
    assert affine_stack(stats, Thresholds()) is None and not diagnose(stats).by_code("no_nonlinearity")


# ------------------------------------------------------------------------------------------------ thresholds act
#: threshold -> (stats, value, another value): moving it from one to the other changes a decision
ACTING = {
    "lr_low_update": (lambda: _digits_run(1e-5), 1e-3, 1e-5),
    "lr_low_loss_drop": (lambda: _digits_run(5e-5), 0.1, 0.001),     # it shed 0.3% of ln 10
    "lr_low_median_update": (lambda: _digits_run(5e-5), 1e-2, 1e-4),     # its layers' median steps 6.2e-4
    "label_entropy_min_travel": (lambda: _digits_run(3e-4, labels="shuffled"), 0.1, 0.5),   # it travelled 0.21
    # the 200-step warm-up cut at 60 rose 60x, its last window 7.1x the median: not checked, named when either moves
    "lr_warmup_rise": (lambda: _digits_run(1e-4, "warmup"), 2.0, 100.0),
    # a dropout(0.1) between two Linears moves the variance by ~1/0.9: at a tolerance of half the values' scale it
    # passes for the same tensor and the net is called one affine map
    "same_tensor_tol": (lambda: _sine_run("dropout")[1], 1e-6, 0.5),
    "lr_warmup_last_window": (lambda: _digits_run(1e-4, "warmup"), 1.5, 10.0),
}


@pytest.mark.parametrize("name", sorted(ACTING))
def test_moving_a_threshold_changes_a_decision(name):
    build, value, other = ACTING[name]
    assert getattr(Thresholds(), name) == value, f"{name}: the first value is the default"
    s = build()
    assert _codes(s, {name: value}) != _codes(s, {name: other})


@pytest.mark.parametrize("pool, linear", [(nn.AvgPool2d, True), (nn.MaxPool2d, False)])
def test_an_average_pool_between_convs_keeps_the_map_affine_a_max_pool_does_not(pool, linear):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), pool(2), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                          nn.Linear(4 * 16, 10))
    X, y = _digits()
    stats = _train(model, torch.optim.Adam(model.parameters(), lr=1e-3), X.reshape(-1, 1, 8, 8), y, F.cross_entropy, 20)
    assert (affine_stack(stats, Thresholds()) == ["0", "2", "4"]) is linear
    # brute force: an affine map satisfies f(a x1 + (1 - a) x2) = a f(x1) + (1 - a) f(x2)
    x1, x2 = X[:2].reshape(-1, 1, 8, 8).split(1)
    with torch.no_grad():
        mixed, blend = model(0.3 * x1 + 0.7 * x2), 0.3 * model(x1) + 0.7 * model(x2)
    assert torch.allclose(mixed, blend, atol=1e-5) is linear


@functools.lru_cache(maxsize=1)
def _centred_pool_run():
    """A conv with no bias on centred digits, average-pooled into the next conv: a mean near 0 (-1.6e-3 at seed 1)."""
    X, y = _digits()
    X = X.reshape(-1, 1, 8, 8)
    X = X - X.mean((0, 2, 3), keepdim=True)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                          nn.Flatten(), nn.Linear(64, 10))
    return model, X, _train(model, torch.optim.Adam(model.parameters(), lr=1e-3), X, y, F.cross_entropy, 3)


def test_an_average_pool_of_a_mean_near_zero_is_still_seen_as_one():
    model, X, stats = _centred_pool_run()
    before, after = stats.layers["0"].output_at_init, stats.layers["2"].input_at_init
    # brute force on the same init and batch shape: the pooled tensor's mean differs from the conv output's only by
    # float32 rounding, a part in 1e6 of that near-zero mean but a few parts in 1e9 of the values' spread
    assert abs(before.mean) < 5e-3 and abs(before.mean - after.mean) > 1e-6 * abs(before.mean)
    assert abs(before.mean - after.mean) < 1e-8 * before.var ** 0.5
    assert affine_stack(stats, Thresholds()) == ["0", "2", "4"]
    x1, x2 = X[:2].split(1)
    with torch.no_grad():
        torch.testing.assert_close(model(0.3 * x1 + 0.7 * x2), 0.3 * model(x1) + 0.7 * model(x2), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ examples, fix
@pytest.mark.parametrize("example, code, remedy", [("learning_rate_too_low", "learning_rate_too_low", "lr_up_10"),
                                                   ("no_nonlinearity", "no_nonlinearity", "relu_between_layers")])
def test_the_example_is_found_its_twin_is_quiet_and_fix_verifies_the_mechanical_remedy(tmp_path, capsys, example,
                                                                                       code, remedy):
    import json
    from pathlib import Path

    from impediments.cli import main
    examples = Path(__file__).resolve().parents[1] / "examples"
    js = tmp_path / "r.json"
    assert main(["doctor", str(examples / f"{example}.py"), "--json", str(js)]) == 1
    assert code in json.loads(js.read_text())["summary"]["codes"]
    assert main(["doctor", str(examples / f"{example}_fixed.py"), "--json", str(js)]) == 0
    main(["fix", str(examples / f"{example}.py"), "--budget-runs", "3", "--seeds", "1", "--jobs", "1", "--json", str(js)])
    capsys.readouterr()
    row = next(r for r in json.loads(js.read_text())["rows"] if r["name"] == remedy)
    assert row["status"] == "verified fix", row["status"]
    assert code in row["verdict"]["verified"]
