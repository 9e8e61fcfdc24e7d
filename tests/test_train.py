import math

import pytest
import torch

from impediments import fit, load_dataset, mlp
from impediments.train import evaluate


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _model(seed=0):
    torch.manual_seed(seed)
    return mlp(64, 10, width=64, depth=2)


def test_fit_reduces_loss_below_threshold(digits):
    h = fit(_model(), digits, steps=300, lr=0.1, progress=False)
    assert h.steps == 300
    assert h.train_loss[0] > 2.0  # near ln(10) at init
    assert h.train_loss[-1] < 0.3
    assert h.test_acc[-1] > 0.9


def test_fit_is_deterministic(digits):
    a = fit(_model(), digits, steps=60, lr=0.1, progress=False, seed=3)
    b = fit(_model(), digits, steps=60, lr=0.1, progress=False, seed=3)
    c = fit(_model(), digits, steps=60, lr=0.1, progress=False, seed=4)
    assert a.to_dict() == b.to_dict()
    assert a.step_loss != c.step_loss


def test_eval_matches_manual_computation(digits):
    m = _model()
    loss, acc = evaluate(m, digits.X_test, digits.y_test)
    with torch.no_grad():
        out = m(digits.X_test)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(out, digits.y_test)), rel=1e-5)
    assert acc == pytest.approx(float((out.argmax(1) == digits.y_test).float().mean()))


def test_callbacks_receive_every_step_and_eval(digits):
    seen = {"steps": [], "evals": []}

    class Recorder:
        def on_step_end(self, step, loss):
            seen["steps"].append((step, float(loss)))

        def on_eval(self, step, metrics):
            seen["evals"].append(step)

    h = fit(_model(), digits, epochs=2, batch_size=256, progress=False, callbacks=[Recorder()])
    per_epoch = math.ceil(len(digits.X_train) / 256)
    assert [s for s, _ in seen["steps"]] == list(range(1, 2 * per_epoch + 1))
    assert [l for _, l in seen["steps"]] == pytest.approx(h.step_loss)
    assert seen["evals"] == h.eval_steps == [0, per_epoch, 2 * per_epoch]


def test_keyboard_interrupt_returns_history(digits):
    class Stop:
        def on_step_end(self, step, loss):
            if step == 7:
                raise KeyboardInterrupt

    h = fit(_model(), digits, steps=50, progress=False, callbacks=[Stop()])
    assert h.interrupted and h.steps == 7


def test_divergence_stops(digits):
    h = fit(_model(), digits, steps=200, lr=1e4, progress=False, eval_every=10)
    assert h.diverged and h.steps < 200


@pytest.mark.parametrize("kwargs,match", [({"batch_size": 0}, "batch_size=0"), ({"batch_size": 10**6}, "batch_size"),
                                          ({"optimizer": "lbfgs2"}, "lbfgs2.*sgd"), ({"lr": -1.0}, "lr"),
                                          ({"steps": 5, "epochs": 1}, "either"), ({"steps": 0}, "steps")])
def test_fit_bad_arguments(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(_model(), digits, progress=False, **kwargs)


# --------------------------------------------------------------------------------------- the one loop: run_steps
from dataclasses import replace  # noqa: E402

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import impediments as imp  # noqa: E402
from impediments.train import Setup, build, iterate_steps, run_steps  # noqa: E402


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.randn(3, 8, generator=g)[y] * 2 + torch.randn(n, 8, generator=g), y


def _net():
    """Dropout included, so the global RNG (seeded by the loop) matters."""
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def _setup(**kw):
    X, y = _blobs()
    fields = dict(model_fn=_net, X=X, y=y, loss_fn=F.cross_entropy,
                  opt_fn=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), steps=23, batch_size=32)
    return Setup(**{**fields, **kw})


def _reference(setup, seed, *, step=None, on_epoch=None, on_step=None):
    """The loop written out by hand: seed, build, reshuffled epochs (last partial batch dropped), plain steps."""
    torch.manual_seed(seed)
    model = setup.model_fn()
    opt = setup.opt_fn(model.parameters())
    model.train()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n, b = len(setup.X), setup.batch_size
    per_epoch, losses, extra = n // b, [], (on_step or on_epoch)(opt) if (on_step or on_epoch) else None
    while len(losses) < setup.steps:
        order = torch.randperm(n, generator=g)
        for start in range(0, n - n % b, b):
            if len(losses) == setup.steps:
                break
            xb, yb = setup.X[order[start:start + b]], setup.y[order[start:start + b]]
            if step is not None:
                loss = step(model, opt, setup.loss_fn, xb, yb, len(losses))
            else:
                loss = setup.loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                if setup.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), setup.clip_grad_norm)
                opt.step()
            losses.append(float(loss.detach()))
            if on_step is not None or (on_epoch is not None and len(losses) % per_epoch == 0):
                extra.step()
    return model, opt, losses


def _assert_same_parameters(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_run_steps_is_bit_identical_to_a_hand_written_loop_with_and_without_a_monitor():
    setup = _setup()
    ref_model, _, ref_losses = _reference(setup, seed=5)
    model, opt = build(setup, seed=5)
    assert run_steps(setup, model, opt, seed=5) == ref_losses
    _assert_same_parameters(model, ref_model)
    watched, opt = build(setup, seed=5)
    with imp.watch(watched, optimizer=opt, every=1) as mon:     # the monitor must never change training
        assert run_steps(setup, watched, opt, monitor=mon, seed=5) == ref_losses
    _assert_same_parameters(watched, ref_model)
    assert mon.sampled_steps == setup.steps
    other, opt = build(setup, seed=6)
    assert run_steps(setup, other, opt, seed=6) != ref_losses


def test_run_steps_steps_a_scheduler_once_per_epoch_or_after_every_step():
    step_lr = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # noqa: E731
    for interval, reference in (("epoch", dict(on_epoch=step_lr)), ("step", dict(on_step=step_lr))):
        setup = _setup(scheduler_fn=step_lr, scheduler_interval=interval)
        ref_model, ref_opt, ref_losses = _reference(setup, seed=1, **reference)
        model, opt = build(setup, seed=1)
        assert run_steps(setup, model, opt, seed=1) == ref_losses
        _assert_same_parameters(model, ref_model)
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    # 200 examples in batches of 32: 6 steps an epoch, so 23 steps halve the rate 3 times per epoch, 23 per step
    assert ref_opt.param_groups[0]["lr"] == 0.1 * 0.5 ** 23
    setup = _setup(scheduler_fn=step_lr)
    model, opt = build(setup, seed=1)
    run_steps(setup, model, opt, seed=1)
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5 ** 3


def test_run_steps_with_a_custom_step_function_gets_the_step_and_the_scheduler():
    seen = []

    def accumulate(model, opt, loss_fn, xb, yb, step, *scheduler):
        seen.append((step, len(scheduler)))
        loss = loss_fn(model(xb), yb) / 2
        loss.backward()
        if step % 2 == 1:
            opt.step()
            opt.zero_grad()
        return loss

    setup = _setup(step_fn=accumulate)
    ref_model, _, ref_losses = _reference(setup, seed=2, step=accumulate)
    seen.clear()
    model, opt = build(setup, seed=2)
    assert run_steps(setup, model, opt, seed=2) == ref_losses
    _assert_same_parameters(model, ref_model)
    assert seen == [(i, 0) for i in range(setup.steps)]
    seen.clear()
    setup = replace(setup, scheduler_fn=lambda o: torch.optim.lr_scheduler.StepLR(o, 1), steps=3)
    run_steps(setup, *build(setup, seed=2), seed=2)
    assert seen == [(0, 1), (1, 1), (2, 1)]          # the step function owns the scheduler: the loop never steps it


def test_run_steps_clips_and_warms_up_like_the_hand_written_loop():
    setup = _setup(clip_grad_norm=0.05, opt_fn=lambda p: torch.optim.SGD(p, lr=0.1))
    ref_model, _, ref_losses = _reference(setup, seed=3)
    model, opt = build(setup, seed=3)
    assert run_steps(setup, model, opt, seed=3) == ref_losses
    _assert_same_parameters(model, ref_model)
    warm = replace(setup, clip_grad_norm=None, warmup_steps=4, steps=6)
    model, opt = build(warm, seed=3)
    lrs = []
    for _ in iterate_steps(warm, model, opt, seed=3):
        lrs.append(opt.param_groups[0]["lr"])
    # LinearLR from 1/4 of the rate to all of it over 4 steps, read after each step
    assert lrs == pytest.approx([0.1 * (0.25 + 0.75 * min(k, 4) / 4) for k in range(1, 7)])


def test_run_steps_records_every_loss_with_a_duck_typed_monitor_and_stops_after_a_non_finite_one():
    class Recorder:
        def __init__(self):
            self.losses = []

        def record_loss(self, loss):
            self.losses.append(float(loss.detach()))

    setup = _setup(opt_fn=lambda p: torch.optim.SGD(p, lr=1e6), steps=50)
    model, opt = build(setup, seed=0)
    rec = Recorder()
    losses = run_steps(setup, model, opt, monitor=rec, seed=0)
    assert 1 < len(losses) < 50 and not math.isfinite(losses[-1]) and all(map(math.isfinite, losses[:-1]))
    assert rec.losses[:-1] == losses[:-1] and len(rec.losses) == len(losses)


def test_build_prepares_the_model_and_the_loop_uses_the_given_batches():
    def prepare(model):
        model[2].eval()                                  # dropout off while training

    def first_batch_again(X, y, size, seed):
        while True:
            yield X[:size], y[:size]

    setup = _setup(prepare=prepare, batches_fn=first_batch_again, steps=4)
    model, opt = build(setup, seed=0)
    assert model.training and not model[2].training
    losses = run_steps(setup, model, opt, seed=0)
    torch.manual_seed(0)
    ref = _net()
    ref_opt = setup.opt_fn(ref.parameters())
    ref.train()
    ref[2].eval()
    for _ in range(4):
        loss = F.cross_entropy(ref(setup.X[:32]), setup.y[:32])
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
    _assert_same_parameters(model, ref)
    assert losses[-1] == float(loss)


def test_fit_trains_on_the_same_loop_as_run_steps(digits):
    """``fit`` is the loop plus evaluation: its per-step losses are a hand-written loop's (the last batch kept)."""
    h = fit(_model(), digits, steps=40, batch_size=500, lr=0.1, progress=False, seed=7)
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(7)
    model, losses = _model(), []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(7)
    n = len(digits.X_train)
    while len(losses) < 40:
        order = torch.randperm(n, generator=g)
        for start in range(0, n, 500):
            if len(losses) == 40:
                break
            idx = order[start:start + 500]
            loss = F.cross_entropy(model(digits.X_train[idx]), digits.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
    assert h.step_loss == losses


@pytest.mark.parametrize("kw,message", [
    (dict(steps=0), "steps must be a positive integer, got 0"),
    (dict(batch_size=True), "batch_size must be a positive integer, got True"),
    (dict(scheduler_interval="batch"), "scheduler_interval must be one of epoch, step; got 'batch'"),
    (dict(y=torch.zeros(3)), "X and y disagree on the number of examples: 200 vs 3"),
])
def test_setup_rejects_bad_fields_naming_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        _setup(**kw)


def test_zoo_loop_codes_are_the_doctors():
    from impediments.doctor import CODES
    from impediments.train.zoo import LOOP_CODES, bug_setup, zoo

    assert set(LOOP_CODES) == {c for c in CODES if CODES[c].experiment.startswith("examples/loop_")}
    cases = zoo()
    setup = cases[0].setup(7)
    assert isinstance(setup, Setup) and setup.steps == 7 and len(setup.X) == len(setup.y) > 0
    with pytest.raises(ValueError, match="unknown loop code 'typo'; valid: gradients_not_cleared"):
        bug_setup("typo", "mlp")
