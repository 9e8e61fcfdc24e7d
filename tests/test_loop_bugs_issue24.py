"""Issue 24's loop bugs on small real scripts, each against its fixed twin, and the false alarms fixed by mechanism.

Each test trains a real loop under :func:`impediments.watch` and checks the report against what the loop did
(brute force: the loop's own counters), never a literal the code wrote.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from impediments import watch
from impediments.doctor.finding import ROLE_RANK, Finding, causes_first

LOUD = ("warning", "error")


def blobs(n=256, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, 8, generator=g) * 2
    y = torch.arange(n) % classes
    return centers[y] + torch.randn(n, 8, generator=g), y


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def train(step, steps=40, lr=0.05, batch=32, model=None):
    """Train with ``step(model, opt, xb, yb)`` on shuffled batches; return (report, model, its initial weights)."""
    X, y = blobs()
    model = model or mlp()
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0))
    with watch(model, optimizer=opt) as mon:
        done = 0
        while done < steps:
            for xb, yb in loader:
                mon.record_loss(step(model, opt, xb, yb, done))
                done += 1
                if done == steps:
                    break
    return mon.report(), model, start


def loud(report):
    return {f.code for f in report.findings if f.severity in LOUD}


def healthy(model, opt, xb, yb, i):
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    return loss


def moved(model, start):
    return any(not torch.equal(p.detach(), s) for p, s in zip(model.parameters(), start))


# ------------------------------------------------------------------------------------------------ step before backward
def step_before_backward(model, opt, xb, yb, i):
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    opt.step()                                   # BUG: before backward: the gradient was just cleared
    loss.backward()
    return loss


def test_step_before_backward_is_named_and_the_report_never_says_run_a_backward_pass():
    report, model, start = train(step_before_backward)
    assert not moved(model, start)               # the bug's effect, measured: the weights never moved
    [f] = report.by_code("parameters_not_updated")
    assert f.severity == "error" and f.evidence["steps_before_backward"] >= 3
    assert 2 * f.evidence["steps_before_backward"] >= f.evidence["sampled_steps_checked"]
    assert "before loss.backward()" in f.explanation and f.remedy.startswith("Call loss.backward() before")
    assert report.findings[0].code == "parameters_not_updated"           # the cause on the first line
    assert not any("run a backward pass" in reason for reason in report.skipped.values())
    fixed, model, start = train(healthy)
    assert moved(model, start) and not loud(fixed)
    assert report.stats.loop.steps_before_backward > 0 == fixed.stats.loop.steps_before_backward


# ------------------------------------------------------------------------------------------------ backward reaches nothing
def rewrapped_loss(model, opt, xb, yb, i):
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    torch.tensor(loss.item(), requires_grad=True).backward()     # BUG: a new leaf, cut from the model
    opt.step()
    return loss


def test_a_backward_that_reaches_no_parameter_is_an_error():
    report, model, start = train(rewrapped_loss)
    assert not moved(model, start)
    [f] = [f for f in report.by_code("parameters_without_gradient") if f.severity == "error"]
    assert f.evidence["with_gradient"] == 0 and f.evidence["backwards"] == report.stats.loop.backwards > 0
    assert report.findings[0] is f
    assert not any("run a backward pass" in reason for reason in report.skipped.values())


# ------------------------------------------------------------------------------------------------ clip_grad_value_
def clip_value(value):
    def step(model, opt, xb, yb, i):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), value)
        opt.step()
        return loss
    return step


def test_clip_grad_value_is_measured_by_the_factor_it_cuts_the_norm():
    original = torch.nn.utils.clip_grad_value_
    report, _, _ = train(clip_value(1e-5))
    assert torch.nn.utils.clip_grad_value_ is original                   # restored on exit
    [f] = report.by_code("gradient_clipping_dominates")
    assert f.where == ["clip_grad_value_"] and f.evidence["clip_value"] == 1e-5 and f.evidence["calls"] == 10
    # (40 calls; measured on the default schedule's full steps 0..9 only: two passes over the gradients each)
    assert f.evidence["typical_norm_before_over_after"] > 100            # every entry clamped to 1e-5
    fixed, _, _ = train(clip_value(10.0))
    assert "gradient_clipping_dominates" not in loud(fixed)


def test_clip_grad_value_ratio_equals_brute_force():
    model, (X, y) = mlp(), blobs()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ratios = []
    with watch(model, optimizer=opt, every=1) as mon:
        for i in range(4):
            opt.zero_grad()
            F.cross_entropy(model(X[i * 32:(i + 1) * 32]), y[i * 32:(i + 1) * 32]).backward()
            before = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
            torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)
            after = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
            ratios.append(float(before / after))
            opt.step()
    loop = mon.stats().loop
    assert loop.clip_function == "clip_grad_value_" and loop.clip_calls == 4
    assert loop.clip_at_least == [sum(r >= 10 ** k for r in ratios) for k in range(5)]


# ------------------------------------------------------------------------------------------------ GAN: no false alarm
def gan(clear_discriminator=True, steps=30):
    """DCGAN's loop: D on real then fake (two backwards, one step), then G through D (a third backward into D's
    stepped gradient, cleared by netD.zero_grad() before D's next backward)."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
    D = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_data = torch.randn(512, 16) * 0.5 + 1.0
    bce = F.binary_cross_entropy_with_logits
    with watch(D, optimizer=opt_d) as mon:
        for _ in range(steps):
            real = real_data[torch.randint(0, 512, (32,))]
            if clear_discriminator:
                D.zero_grad()
            out = D(real)
            err_real = bce(out, torch.ones_like(out))
            err_real.backward()
            fake = G(torch.randn(32, 8))
            out = D(fake.detach())
            err_fake = bce(out, torch.zeros_like(out))
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            out = D(fake)
            bce(out, torch.ones_like(out)).backward()
            opt_g.step()
            mon.record_loss(err_real + err_fake)
    return mon.report()


def test_gan_generator_backward_through_the_discriminator_is_not_uncleared_gradients():
    quiet = gan()
    assert not [f for f in quiet.by_code("gradients_not_cleared") if f.severity in LOUD]
    broken = gan(clear_discriminator=False)                # the same loop without netD.zero_grad(): the real bug
    [f] = broken.by_code("gradients_not_cleared")
    assert f.severity == "error" and f.where == ["0", "2"]


# ------------------------------------------------------------------------------------------------ full batch
def full_batch(kind, steps=30):
    X, y = blobs(n=128)
    model = mlp()
    if kind == "lbfgs":
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    one_batch = DataLoader(TensorDataset(X, y), batch_size=len(X))
    with watch(model, optimizer=opt) as mon:
        for _ in range(steps):
            for xb, yb in (one_batch if kind == "loader" else [(X, y)]):
                def closure():
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward()
                    return loss
                mon.record_loss(opt.step(closure))
    return mon.report()


class FullGraph(nn.Module):
    """A two-layer graph convolution over a fixed normalized adjacency: the whole graph every step."""

    def __init__(self, adjacency):
        super().__init__()
        self.adjacency, self.conv1, self.conv2 = adjacency, nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.adjacency @ self.conv2(F.relu(self.adjacency @ self.conv1(x)))


def test_full_batch_lbfgs_and_full_graph_training_are_not_repeated_batch_warnings():
    for kind in ("sgd", "loader", "lbfgs"):
        report = full_batch(kind)
        [f] = report.by_code("repeated_batch")
        assert f.severity == "info", kind
        assert f.evidence["identical_to_previous"] == f.evidence["compared"]   # the batch does repeat
    X, y = blobs(n=128)
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(128, 128, generator=g) < 0.05).float()
    a = ((a + a.T + torch.eye(128)) > 0).float()
    model = FullGraph(a / a.sum(1, keepdim=True))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with watch(model, optimizer=opt) as mon:
        for _ in range(30):
            opt.zero_grad()
            loss = F.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    assert "repeated_batch" not in loud(mon.report())


def test_next_iter_inside_the_loop_is_still_a_warning_with_the_loader_counts():
    X, y = blobs()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(TensorDataset(X, y), batch_size=32)
    original = DataLoader.__iter__
    with watch(model, optimizer=opt) as mon:
        for _ in range(30):
            xb, yb = next(iter(loader))
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    assert DataLoader.__iter__ is original
    [f] = mon.report().by_code("repeated_batch")
    assert f.severity == "warning"
    assert (f.evidence["loader_iterators_started"], f.evidence["batches_drawn"], f.evidence["batches_in_loader"]) == (
        30, 30, 8)


# ------------------------------------------------------------------------------------------------ ranking
def test_equal_severities_put_the_program_bug_before_data_properties_and_symptoms():
    def f(code):
        return Finding(code, "warning", ["x"], {}, "", "")
    ordered = causes_first([f("loss_plateau"), f("dead_units"), f("uncentered_inputs"), f("model_in_eval_mode"),
                            f("parameters_without_gradient")])
    assert [x.code for x in ordered] == ["model_in_eval_mode", "parameters_without_gradient", "uncentered_inputs",
                                         "dead_units", "loss_plateau"]
    assert ROLE_RANK["loss_plateau"] > ROLE_RANK["dead_units"] > ROLE_RANK["uncentered_inputs"]
    # a scheduler stepped per batch settles the loss at the labels' entropy: the loop bug is the cause
    assert [x.code for x in causes_first([f("uninformative_labels"), f("learning_rate_collapsed")])] == [
        "learning_rate_collapsed", "uninformative_labels"]


# ------------------------------------------------------------------------------------------------ examples and fix
def test_step_before_backward_example_its_twin_and_the_verified_fix(capsys, recwarn):
    from pathlib import Path

    from impediments.cli import main

    examples = Path(__file__).resolve().parent.parent / "examples"
    assert main(["doctor", str(examples / "loop_step_before_backward.py")]) == 1
    assert "parameters_not_updated" in capsys.readouterr().out
    assert main(["doctor", str(examples / "loop_step_before_backward_fixed.py")]) == 0
    capsys.readouterr()
    assert main(["fix", str(examples / "loop_step_before_backward.py"), "--jobs", "1", "--budget-runs", "3"]) == 0
    printed = capsys.readouterr().out
    chosen = next(line for line in printed.splitlines() if line.startswith("chosen:"))
    assert "plain_train_step" in chosen and "still flagged after it: none" in chosen
    assert "loss.backward()\nopt.step()" in printed


def test_only_biases_trainable_is_named_by_its_cost_and_a_healthy_twin_is_quiet():
    """Every weight frozen at random init: the loss barely falls, a warning; the counts are brute force."""
    model = mlp()
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    report, _, _ = train(healthy, steps=60, model=model)
    [f] = report.by_code("almost_all_frozen")
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    assert (f.evidence["trainable_values"], f.evidence["frozen_values"]) == (
        biases, sum(p.numel() for p in model.parameters()) - biases)
    assert f.severity == "warning" and f.evidence["loss_drop"] < 0.25
    fixed, _, _ = train(healthy, steps=60)
    assert "almost_all_frozen" not in fixed.codes


# ------------------------------------------------------------------------------------------------ manual updates
class TinyLM(nn.Module):
    """PyTorch's word language model in small: embedding, LSTM, decoder; trained by hand (p.data.add_)."""

    def __init__(self, vocab=50, hidden=32):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(vocab, hidden), nn.LSTM(hidden, hidden), nn.Linear(hidden, vocab)

    def forward(self, x, h):
        o, h = self.rnn(self.emb(x), h)
        return self.out(o), h


def manual_lm(clear, accumulate=1, steps=40, lr=2.0):
    torch.manual_seed(0)
    text = torch.randint(0, 50, (2000,)).cumsum(0) % 50
    model, hidden = TinyLM(), None
    with watch(model) as mon:                                # no optimizer: the update is written by hand
        for step in range(steps):
            i = (step * 35) % (len(text) - 36)
            x, y = text[i:i + 35].view(35, 1).expand(35, 4), text[i + 1:i + 36].view(35, 1).expand(35, 4)
            if clear and step % accumulate == 0:
                model.zero_grad()
            out, hidden = model(x.contiguous(), hidden)
            hidden = tuple(t.detach() for t in hidden)
            loss = F.cross_entropy(out.view(-1, 50), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            if (step + 1) % accumulate == 0:
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)
            mon.record_loss(loss)
    return mon.report()


def manual_regression(clear, steps=40):
    torch.manual_seed(0)
    w, fc = torch.randn(4, 1) * 0.5, nn.Linear(4, 1)
    with watch(fc) as mon:
        for _ in range(steps):
            x = torch.randn(32, 4)
            if clear:
                fc.zero_grad()
            loss = F.smooth_l1_loss(fc(x), x @ w + 0.3)
            loss.backward()
            for p in fc.parameters():
                p.data.add_(-0.1 * p.grad)
            mon.record_loss(loss)
    return mon.report()


def test_missing_zero_grad_under_hand_written_updates_lstm_lm_and_regression():
    for run in (manual_lm, manual_regression):
        [f] = run(clear=False).by_code("gradients_not_cleared")
        assert f.severity == "error" and f.evidence["stale_backwards"] >= 3, run.__name__
        assert not run(clear=True).by_code("gradients_not_cleared"), run.__name__
    # accumulating 4 backwards between two hand-written updates, cleared after each: values unmoved between them
    assert not manual_lm(clear=True, accumulate=4).by_code("gradients_not_cleared")


# ------------------------------------------------------------------------------------------------ parameters reset
def reinit_then_step(model, opt, xb, yb, i):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()                  # BUG: the model starts over every iteration
    return healthy(model, opt, xb, yb, i)


def clamp_after_step(model, opt, xb, yb, i):
    loss = healthy(model, opt, xb, yb, i)
    with torch.no_grad():
        for p in model.parameters():
            p.clamp_(-0.5, 0.5)                   # WGAN-style weight clipping: a constraint, on purpose
    return loss


def test_weights_reset_in_the_loop_are_an_error_and_a_constraint_after_the_step_is_info():
    report, _, _ = train(reinit_then_step, steps=60)
    [f] = report.by_code("parameters_reset")
    loop = report.stats.loop
    assert f.severity == "error" and loop.external_writes == loop.external_write_checks >= 3
    assert report.findings[0] is f
    clamped, _, _ = train(clamp_after_step, steps=60)
    assert "parameters_reset" not in loud(clamped)
    fixed, _, _ = train(healthy, steps=60)
    assert fixed.stats.loop.external_writes == 0 and not fixed.by_code("parameters_reset")
