"""The doctor's report as read by a person: readable names in the terminal, the HTML report over time."""
from __future__ import annotations

import torch
from torch import nn

from impediments.doctor.terminal import readable, render_text
from impediments import watch
from impediments.report import render_doctor_html


def _dead_sequential(steps: int = 12):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():
        model[2].bias.fill_(-100.0)      # every unit of the second ReLU dead
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(steps):
            loss = model(torch.randn(32, 10)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return model, mon.report()


def test_sequential_units_are_named_with_their_module_type():
    model, report = _dead_sequential()
    (dead,) = report.by_code("dead_units")
    assert dead.where == ["3"]                                  # the JSON keeps the module's own name
    text = render_text(report, width=200)
    assert f"3 ({type(model[3]).__name__})" in text             # the terminal says what module "3" is
    layer = dead.evidence["layers"]["3"]                        # its per-layer numbers and what it saw, spelled out
    assert f"3 (ReLU): dead_fraction={layer['dead_fraction']:.3g}; dead_units={layer['dead_units']}" in text
    assert "seen: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in dead.evidence["seen"].items()) in text
    types = {"3": "ReLU", "2": "Linear", "block": "Sequential"}
    assert readable("2.weight", types) == "2.weight (Linear)"   # a parameter: its module's type
    assert readable("block", types) == "block"                  # named attributes are readable already
    assert readable("layer/relu#0", types) == "layer/relu#0"


def test_not_checked_reasons_stay_true_when_the_whole_loop_ran_in_eval_mode():
    """With the model in eval() throughout, the BatchNorm rules lacked data because nothing was
    recorded, not because the model has no BatchNorm layers (it has two)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.eval()
    with watch(model, optimizer=opt) as mon:
        for _ in range(4):
            loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 3, (8,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    report = mon.report()
    assert not any("no BatchNorm layers" in reason for reason in report.skipped.values())
    for rule, reason in report.skipped.items():
        if rule.startswith("bn_") or rule == "dead_units":
            assert "training mode" in reason
    text = render_text(report, width=300)
    assert text.count("no forward ran in training mode") <= 1           # one reason, said once


# --------------------------------------------------------------------------------------------- the HTML report over time
def _fit(steps: int, lr: float):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 2))
    X, Y = torch.randn(256, 10), torch.randint(0, 2, (256,))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with watch(model, optimizer=opt) as mon:             # the default schedule: not every step sampled
        for step in range(steps):
            idx = torch.arange(step * 32, step * 32 + 32) % 256
            loss = nn.functional.mse_loss(model(X[idx]), torch.nn.functional.one_hot(Y[idx], 2).float() * 1e3)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return mon


def test_views_over_training_have_one_column_per_sampled_window_labelled_by_steps():
    from impediments.report.doctor_html import sampled_windows, step_label

    stats = _fit(200, 1e-4).stats()
    sampled = sampled_windows(stats, "activation_var")
    blank = [w for w in stats.windows if not w.activation_var]
    assert len(sampled) >= 2 and blank                   # the old x axis had blank columns
    assert all(w.activation_var and w.dead_fraction is not None for w in sampled)
    assert sampled == [w for w in stats.windows if w.activation_var]
    one = next(w for w in stats.windows if w.end_step - w.start_step == 1) if any(
        w.end_step - w.start_step == 1 for w in stats.windows) else None
    if one is not None:
        assert step_label(one) == str(one.start_step)
    wide = max(stats.windows, key=lambda w: w.end_step - w.start_step)
    assert step_label(wide) == f"{wide.start_step}-{wide.end_step - 1}"


def test_html_has_a_loss_curve_shading_the_windows_the_loss_rules_compare():
    from impediments.doctor.thresholds import Thresholds
    from impediments.report.doctor_html import compared_windows

    mon = _fit(60, 0.5)                                   # lr far too high for targets of 1e3: diverges
    report = mon.report()
    assert 'alt="loss curve"' in render_doctor_html(report)
    transient_steps = Thresholds().transient_steps
    transient, first, last = compared_windows(report.stats.windows, transient_steps)
    assert transient and all(w.start_step < transient_steps for w in transient)
    assert first and last and first[0].start_step >= transient_steps and last[-1] == report.stats.windows[-1]
    (diverging,) = [f for f in report.by_code("diverging_loss") if "first_third_loss" in f.evidence]
    for part, key in ((first, "first_third_loss"), (last, "last_third_loss")):  # shaded = what the rule averaged
        mean = sum(w.loss_mean for w in part) / len(part)
        assert abs(diverging.evidence[key] - mean) <= 1e-9 * abs(mean)
