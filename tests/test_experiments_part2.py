"""Part-2 experiments (normalization): key numbers checked directly at seeds 0, 1 and 2 in quick mode, and helpers.

Key numbers are checked here against brute force or closed forms,
independently of each module's ``claims``; the contract every experiment
keeps (claims hold, JSON round trip, presets, registry order) is tested once
for both parts in ``test_experiments_common.py``. Runs come from the shared
session cache ``quick_run`` (``conftest.py``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from impediments.experiments import part2

NAMES = [p.rsplit(".", 1)[-1] for p in part2.EXPERIMENTS]
SEEDS = (0, 1, 2)


# ---------------------------------------------------------------- direct checks of key numbers


def _bn_sigmoid(r):
    for key in ("plain", "bn"):
        q = np.asarray(r.runs[key]["quantiles"])
        assert q.shape == (len(r.steps), 3)
        assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2]), "percentiles are ordered"
        assert all(d >= 0 for d in r.runs[key]["drift"])
    assert r.runs["bn"]["test_acc"][-1] > 0.9


def _frozen_bn_transfer(r):
    keras, naive, finetune = (r.runs[m] for m in ("keras_freeze", "naive_freeze", "finetune"))
    assert all(d == 0.0 for d in keras["drift"]), "a frozen BN never moves its running statistics"
    assert all(d > 0 for d in naive["drift"]) and all(d > 0 for d in finetune["drift"])
    assert keras["source_acc_after"] == r.source_acc
    assert keras["monitor_frozen"] == 1 and naive["monitor_frozen"] == 0 == finetune["monitor_frozen"]


def _bn_inference(r):
    m = np.asarray(r.batch_sizes, dtype=float)
    # torch stores the unbiased variance: a cumulative average of m/(m-1)·σ²_B
    np.testing.assert_allclose(r.running_var, m / (m - 1) * np.asarray(r.biased_var), rtol=1e-4)
    np.testing.assert_allclose(r.one_step_ratio, m / (m - 1), rtol=1e-5)
    assert "more than 1 value" in r.batch1_train_error
    assert len(r.acc_ema) == len(r.acc_precise) == len(r.mean_gap) == len(r.steps)
    assert r.fold_bn_left == 0 and 0 <= r.fold_max_diff < 1e-4


def _bn_dropout(r):
    for a, per_rate in r.shift.items():
        assert all(len(s) == len(r.baseline) for s in per_rate)
    # the first BN of "between" and "after" has no dropout in front of it: no shift at all
    assert all(s[0] == 1.0 or math.isclose(s[0], 1.0, rel_tol=1e-9) for s in r.shift["between"] + r.shift["after"])
    # dropout right before BN: the shift grows with the rate
    first = [s[0] for s in r.shift["before"]]
    assert first == sorted(first) and first[0] > 1
    assert r.preceded_by["after"] == ["Linear"] * len(r.baseline)


def _l2_with_bn(r):
    # η/‖w‖² is recorded from the same norms (mean over layers of the per-layer value >= η / mean‖w‖² by Jensen)
    for d in r.decays:
        n, e = np.asarray(r.norms[str(d)]), np.asarray(r.effective_lr[str(d)])
        assert np.all(e >= r.lr / n ** 2 * (1 - 1e-9))
        assert len(n) == len(r.steps)
    assert r.norms["0.0"][0] == r.norms[str(r.decays[-1])][0], "all λ start from the same weights"


def _bn_output_stats(r):
    # the same layers without BN are sigmoid outputs: mean in (0, 1), variance <= 1/4
    for m, v in zip(r.stats["plain"]["mean"], r.stats["plain"]["var"]):
        assert all(0 < x < 1 for x in m) and all(0 <= x <= 0.25 for x in v)
    assert len(r.stats["bn"]["mean"]) == len(r.epochs) == len(r.test_acc["bn"])


def _small_batch_norms(r):
    for norm, errs in r.test_error.items():
        assert all(0 <= e <= 1 for e in errs) and len(errs) == len(r.ghost_sizes)
        if norm != "batch":
            assert len(set(errs)) == 1, "per-example norms do not depend on the ghost batch"
    assert r.batch_dependence["group"] == 0.0 and r.batch_dependence["layer"] == 0.0


def _bn_learning_rates(r):
    for key in ("plain", "bn"):
        for s, d, a in zip(r.steps_to_target[key], r.diverged[key], r.final_acc[key]):
            assert not (d and math.isfinite(s)), "a diverged run never reaches the target"
            if math.isfinite(s):
                assert a >= r.target_acc and s % 10 == 0 and s <= r.max_steps


def _norm_every_k(r):
    assert r.norm_layers == [r.depth // e if e else 0 for e in r.every]
    assert all(t > 0 for t in r.ms_per_step)


DIRECT = {"bn_sigmoid": _bn_sigmoid, "frozen_bn_transfer": _frozen_bn_transfer, "bn_inference": _bn_inference,
          "bn_dropout": _bn_dropout, "l2_with_bn": _l2_with_bn, "bn_output_stats": _bn_output_stats,
          "small_batch_norms": _small_batch_norms, "bn_learning_rates": _bn_learning_rates,
          "norm_every_k": _norm_every_k}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(set(DIRECT) & set(NAMES)))
def test_key_numbers(quick_run, name, seed):
    DIRECT[name](quick_run(name, seed)[1])


# ---------------------------------------------------------------- helpers against references


def test_relative_drift_matches_brute_force():
    from impediments.experiments.part2.bn_sigmoid import relative_drift

    rng = np.random.default_rng(0)
    q = np.sort(rng.normal(size=(7, 3, 4)), axis=1)
    got = relative_drift(q, 2)
    for u in range(4):
        expected = max(abs(q[t, k, u] - q[-1, k, u]) for t in range(2, 7) for k in range(3))
        assert math.isclose(got[u], expected / (q[-1, 2, u] - q[-1, 0, u]), rel_tol=1e-12)


def test_inputs_of_training_mode_uses_batch_statistics_and_leaves_buffers():
    from impediments.experiments.part2._common import inputs_of

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.Sigmoid())
    X = torch.randn(40, 3) * 3 + 1
    before = model[1].running_mean.clone()
    z = inputs_of(model, "2", X, training=True)
    expected = torch.nn.functional.batch_norm(model[0](X), None, None, model[1].weight, model[1].bias, training=True)
    torch.testing.assert_close(z, expected)
    assert torch.equal(model[1].running_mean, before) and model.training
    z_eval = inputs_of(model, "2", X)
    torch.testing.assert_close(z_eval, model[1].eval()(model[0](X)))


def test_running_stat_drift_zero_for_identical_and_matches_formula():
    from impediments.experiments.part2.frozen_bn_transfer import running_stat_drift

    bn = torch.nn.BatchNorm1d(4)
    model = torch.nn.Sequential(bn)
    ref = {"0": (bn.running_mean.clone(), bn.running_var.clone())}
    assert running_stat_drift(model, ref) == (0.0, 0.0)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.0, 2.0]))
        bn.running_var.fill_(math.e)
    shift, logvar = running_stat_drift(model, ref)
    assert math.isclose(shift, 1.0 / math.sqrt(1 + bn.eps), rel_tol=1e-6)
    assert math.isclose(logvar, 1.0, rel_tol=1e-6)


def test_few_shot_takes_k_per_class():
    from impediments.data import load_dataset
    from impediments.experiments.part2.frozen_bn_transfer import few_shot

    data = load_dataset("digits").subset((5, 6, 7, 8, 9))
    small = few_shot(data, 3, seed=0)
    assert torch.bincount(small.y_train, minlength=5).tolist() == [3] * 5
    assert len(small.X_test) == len(data.X_test)


def test_unbiased_variance_helper_against_numpy():
    from impediments.experiments.part2.bn_inference import unbiased_variance

    biased, running, ratio = unbiased_variance((2, 5), draws=300, seed=4)
    g = torch.Generator().manual_seed(4)
    for k, m in enumerate((2, 5)):
        x = torch.randn(300, m, 1, generator=g).numpy()
        assert math.isclose(biased[k], float(x.var(axis=1).mean()), rel_tol=1e-5)
        assert math.isclose(running[k], float(x.var(axis=1, ddof=1).mean()), rel_tol=1e-4)
        assert math.isclose(ratio[k], m / (m - 1), rel_tol=1e-5)


def test_li_formula_matches_monte_carlo_dropout():
    from impediments.experiments.part2.bn_dropout import li_formula

    torch.manual_seed(0)
    x = torch.randn(200_000, 3) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([0.0, 1.0, -2.0])
    for rate in (0.2, 0.5):
        dropped = torch.nn.functional.dropout(x, rate, training=True)
        measured = float(dropped.var(0).sum() / x.var(0).sum())
        assert math.isclose(li_formula(x, 1 - rate), measured, rel_tol=0.02)


def test_bn_dropout_build_orders():
    from impediments.experiments.part2.bn_dropout import build

    names = lambda m: [type(c).__name__ for c in m.hidden1]  # noqa: E731
    assert names(build("before", 4, 2, 8, 2, 0.5)) == ["Linear", "Dropout", "BatchNorm1d", "ReLU"]
    assert names(build("between", 4, 2, 8, 2, 0.5)) == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    after = build("after", 4, 2, 8, 2, 0.5)
    assert names(after) == ["Linear", "BatchNorm1d", "ReLU"] and isinstance(after.dropout, torch.nn.Dropout)
    with pytest.raises(ValueError, match="valid: before, between, after"):
        build("sideways", 4, 2, 8, 2, 0.5)


def test_scale_bn_fed_scales_eps_and_weights():
    from impediments.experiments.part2.l2_with_bn import bn_fed, scale_bn_fed
    from impediments.models import mlp

    torch.manual_seed(0)
    model = mlp(6, 3, width=5, depth=2, norm="batch")
    scaled = scale_bn_fed(model, 3.0, scale_eps=True)
    for a, b in zip(bn_fed(model), bn_fed(scaled)):
        torch.testing.assert_close(b.weight, 3 * a.weight)
        torch.testing.assert_close(b.bias, 3 * a.bias)
    assert math.isclose(scaled.hidden1.norm.eps, 9 * model.hidden1.norm.eps)
    assert scale_bn_fed(model, 3.0, scale_eps=False).hidden1.norm.eps == model.hidden1.norm.eps
    X = torch.randn(20, 6)
    torch.testing.assert_close(scaled.train()(X), model.train()(X), rtol=1e-5, atol=1e-6)


def test_ghost_batch_norm_matches_per_group_batch_norm():
    from impediments.experiments.part2.small_batch_norms import GhostBatchNorm

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
    ref = torch.nn.BatchNorm1d(4)
    ref.load_state_dict(bn.state_dict())
    x = torch.randn(12, 4, 7, dtype=torch.float64, requires_grad=True)
    bn.double()
    ref.double()
    ghost = GhostBatchNorm(bn, 3).train()
    expected = torch.cat([torch.nn.functional.batch_norm(c, None, None, ref.weight, ref.bias, training=True,
                                                         eps=ref.eps) for c in x.split(3)])
    torch.testing.assert_close(ghost(x), expected)
    ref(x[:3])          # running statistics: from the first group only
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    torch.autograd.gradcheck(lambda t: GhostBatchNorm(bn, 3).train()(t), (x,))
    ghost.eval()
    torch.testing.assert_close(ghost(x), bn.eval()(x))
    with pytest.raises(ValueError, match="ghost batches of 3"):
        ghost.train()(x[:5])
    with pytest.raises(ValueError, match=">= 2"):
        GhostBatchNorm(bn, 1)


def test_op_counter_counts_batch_norm_work():
    from impediments.experiments.part2.norm_every_k import work_per_step

    torch.manual_seed(0)
    X, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    plain = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with_bn = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                  torch.nn.Linear(8, 3))
    ops_plain, el_plain = work_per_step(plain, X, y)
    ops_bn, el_bn = work_per_step(with_bn, X, y)
    assert ops_plain > 5 and el_plain >= 16 * 8 + 16 * 3
    assert ops_bn > ops_plain and el_bn - el_plain >= 2 * 16 * 8   # at least BN's output and its input gradient


def test_bn_gradient_scale_invariance_is_exact_only_behind_batch_norm():
    from impediments.experiments.part2.bn_gradient_scale import scale_invariance
    from impediments.models import mlp

    torch.manual_seed(0)
    X, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    with_bn = mlp(6, 3, width=16, depth=3, activation="relu", norm="batch").double()
    ratio, _ = scale_invariance(with_bn, X.double(), y, "hidden2", 3.0)
    assert 1e-7 < abs(ratio / 3.0 - 1) < 1e-4, "torch's fixed eps = 1e-5 breaks the invariance by about eps"
    for m in with_bn.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.eps = 1e-30                                    # BN(aWu) = BN(Wu) to float64 rounding
    ratio, others = scale_invariance(with_bn, X.double(), y, "hidden2", 3.0)
    assert math.isclose(ratio, 3.0, rel_tol=1e-9) and others < 1e-9
    plain = mlp(6, 3, width=16, depth=3, activation="relu").double()
    ratio, others = scale_invariance(plain, X.double(), y, "hidden2", 3.0)
    assert not math.isclose(ratio, 3.0, rel_tol=1e-2) and others > 1e-2, "without BN the scale changes everything"


def test_bn_gamma_beta_closed_form_is_the_normal_fraction_of_the_linear_region():
    from scipy import stats

    from impediments.activations.regions import classify, linear_intervals

    (lo, hi), = linear_intervals("sigmoid")
    bound = min(-lo, hi)
    closed = math.erf(bound / math.sqrt(2))
    assert math.isclose(closed, stats.norm.cdf(bound) - stats.norm.cdf(-bound), rel_tol=1e-12)
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0))
    assert abs(float(classify(z, "sigmoid")[1]) - closed) < 0.005


def test_bn_placement_inputs_to_records_each_input_and_removes_its_hooks():
    from impediments.experiments.part2.bn_placement import distributions, inputs_to
    from impediments.models import mlp

    torch.manual_seed(0)
    model = mlp(6, 3, width=8, depth=2, activation="sigmoid", norm="batch", norm_position="post").train()
    X = torch.randn(10, 6)
    seen = inputs_to(model, torch.nn.Sigmoid, X)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(seen[0], model.hidden1.linear(X))
        torch.testing.assert_close(seen[1], model.hidden2.linear(model.hidden1(X)))
    assert model.train().training and not any(m._forward_pre_hooks for m in model.modules())
    saturated, centring = distributions(model, X)
    assert len(saturated) == 2 and len(centring) == 2 and all(0 <= s <= 1 for s in saturated)
    torch.testing.assert_close(centring[-1], float(model.eval().hidden2(model.hidden1(X)).mean(0).abs().mean()))
