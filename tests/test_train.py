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
