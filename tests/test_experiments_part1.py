"""Part-1 experiments: key numbers checked directly at seeds 0, 1 and 2 in quick mode, and helpers.

The checks here are independent of each module's ``claims``; the contract
every experiment keeps (claims hold, JSON round trip, presets) is tested once
for both parts in ``test_experiments_common.py``. Runs come from the shared
session cache ``quick_run`` (``conftest.py``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from impediments.experiments import part1

NAMES = [p.rsplit(".", 1)[-1] for p in part1.EXPERIMENTS]
SEEDS = (0, 1, 2)


# ---------------------------------------------------------------- direct checks of key numbers


def _zigzag(r):
    # per-example updates of a linear unit are lr*err*x: with x > 0 both components share the sign of err
    assert r.same_sign_positive == 1.0
    d = np.diff(np.asarray(r.path_positive), axis=0)
    assert np.all(np.sign(d[:, 0]) * np.sign(d[:, 1]) >= 0)
    assert r.steps_positive > r.steps_centred
    assert np.linalg.norm(np.asarray(r.path_centred)[-1] - r.w_star) <= 0.01 * np.linalg.norm(r.w_star) + 1e-12
    # (a') one step from 0 removes the fraction η·σ_j² of weight j's error (diagonal Hessian), η = 0.5/λmax
    eta = 0.5 / max(r.variances)
    np.testing.assert_allclose(r.rates_unequal, [eta * v for v in r.variances], rtol=1e-9)
    assert r.steps_equal == 1 and r.steps_unequal > 1  # κ = 1: the best rate 2/(λmax+λmin) lands in one step
    for key in r.acc:  # (b) each input's best rate is the argmax of its own accuracies
        assert r.best_lr[key] == r.lrs[int(np.argmax(r.acc[key]))] and len(r.acc[key]) == len(r.lrs)
    assert r.train_mean_abs_max < 1e-5 < r.batch_mean_abs


def _symmetric_runs(r, keys, random_keys):
    for key in keys:
        for layer, spread in r.runs[key]["spread"].items():
            assert all(v == 0.0 for v in spread), (key, layer)
    for key in random_keys:
        assert all(v[-1] > 0.1 for v in r.runs[key]["spread"].values())
        assert r.runs[key]["test_acc"][-1] > 0.8


def _zero_init(r):
    _symmetric_runs(r, ["zero"], ["random"])
    assert r.runs["zero"]["weight_change"] > 0
    assert len(r.runs["zero"]["test_acc"]) == len(r.steps)


def _identical_init(r):
    acts = {k.split("/")[0] for k in r.runs}
    _symmetric_runs(r, [f"{a}/identical" for a in acts], [f"{a}/random" for a in acts])
    for a in acts:
        spread = r.runs[f"{a}/perturbed"]["spread"]
        assert all(0 < v[0] < 100 * r.noise for v in spread.values())


def _dead_bias(r):
    normal, negative = r.runs[str(r.biases[0])], r.runs[str(r.biases[-1])]
    assert negative["dead_bias_change"] == 0.0
    for run in (normal, negative):
        # equal widths: the overall fraction is the mean of the per-layer fractions
        for k, key in enumerate(("dead_before", "dead_after")):
            assert math.isclose(np.mean(list(run[key].values())), run["dead_all"][k], rel_tol=1e-6)
        # a unit never active on any training batch is also dead on the whole set at init and at the end
        for layer, never in run["never_active"].items():
            assert never <= min(run["dead_before"][layer], run["dead_after"][layer]) + 1e-9
        # monitor windows are ordered and the last one covers the last training step
        assert run["window_end"] == sorted(run["window_end"]) and run["window_end"][-1] >= run["eval_steps"][-1]
    assert min(negative["dead_all"]) > max(normal["dead_all"])


def _depth_distributions(r):
    a, i = r.activations.index, r.inits.index
    # ReLU of a symmetric pre-activation is 0 about half the time (He et al. 2015)
    assert 0.4 <= r.frac_zero[a("relu"), i("he"), -1] <= 0.6
    # tanh is odd, so its outputs under any zero-mean init are (nearly) zero-mean: module formula == He formula
    np.testing.assert_allclose(r.formula_module[a("tanh")], r.formula_he[a("tanh")], rtol=0.05)
    # histograms are fractions of the batch and cover the bounded ranges
    assert np.all(np.asarray(r.hist_counts).sum(-1) <= 1 + 1e-9)
    np.testing.assert_allclose(np.asarray(r.hist_counts)[a("tanh")].sum(-1), 1.0)


def _glorot_he(r):
    assert all(abs(v - math.log(10)) < 0.01 for v in r.glorot_train_loss)
    assert r.he_train_loss[-1] < r.he_train_loss[0]
    s, n = np.asarray(r.tanh_act_std["standard"]), np.asarray(r.tanh_act_std["normalized"])
    assert np.all(np.diff(s) < 0), "standard init: activations narrow at every layer going up"
    assert np.all(np.diff(np.asarray(r.tanh_grad_var["standard"])) > 0), "gradients shrink going down"


def _residual_limits(r):
    he = np.asarray(r.he_std)
    # Var roughly doubles per pre-activation block with He init: std grows at least ~sqrt(2)^(L2-L1)/4
    assert he[-1] / he[0] >= 2 ** ((r.depths[-1] - r.depths[0]) / 2) / 1e4
    assert r.he_diverged and not math.isfinite(r.he_train_loss[-1])
    assert all(math.isfinite(v) for v in r.fixup_train_loss)


def _layerwise_pretraining(r):
    from impediments.experiments.part1.layerwise_pretraining import at_step

    assert len(r.recon_first) == len(r.recon_last) and all(l < f for f, l in zip(r.recon_first, r.recon_last))
    assert r.rand_steps[-1] == r.finetune_steps + r.pretrain_steps_total and r.pre_steps[-1] == r.finetune_steps
    assert at_step(r.rand_steps, r.rand_train_loss, r.finetune_steps) > r.pre_train_loss[-1]
    assert at_step([0, 10, 20], [3.0, 2.0, 1.0], 15) == 2.0 and at_step([0, 10, 20], [3.0, 2.0, 1.0], 20) == 1.0
    from impediments.experiments.part1.layerwise_pretraining import best_until

    assert best_until([0, 10, 20], [3.0, 1.0, 2.0], 15) == 1.0 and best_until([0, 10, 20], [3.0, 1.0, 2.0], 5) == 3.0


def _activations(r):
    import torch

    i = {n: k for k, n in enumerate(r.names)}
    x = torch.as_tensor(np.asarray(r.x))
    # reference: torch's own functions and closed forms
    np.testing.assert_allclose(r.values[i["sigmoid"]], torch.sigmoid(x).numpy(), atol=1e-12)
    np.testing.assert_allclose(r.derivatives[i["tanh"]], 1 - np.tanh(np.asarray(r.x)) ** 2, atol=1e-12)
    np.testing.assert_array_equal(r.derivatives[i["relu"]], (np.asarray(r.x) > 0).astype(float))
    # sigmoid'(x) / sigmoid'(0) = 4 s (1 - s) < 4 * 0.01 * 0.99  <=>  s < 0.01 or s > 0.99  <=>  |x| > ln 99
    bound = max(hi for lo, hi in r.saturated["sigmoid"] if lo == -math.inf)
    assert abs(-bound - math.log(99)) < 1e-6
    np.testing.assert_allclose(np.asarray(r.fractions).sum(axis=1), 1.0, atol=1e-6)
    # brute-force fraction of the grid where |a'| < 3.96% of the peak (tanh's only dips are its tails)
    d = np.abs(np.asarray(r.derivatives[i["tanh"]]))
    assert abs(np.mean(d < 4 * 0.01 * 0.99 * d.max()) - r.fractions[i["tanh"]][0]) < 2 / len(d)


DIRECT = {
    "activations": _activations, "zigzag": _zigzag, "dead_bias": _dead_bias, "zero_init": _zero_init,
    "identical_init": _identical_init, "depth_distributions": _depth_distributions, "glorot_he": _glorot_he,
    "residual_limits": _residual_limits, "layerwise_pretraining": _layerwise_pretraining,
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(set(DIRECT) & set(NAMES)))
def test_key_numbers(quick_run, name, seed):
    DIRECT[name](quick_run(name, seed)[1])


def test_zigzag_condition_number_formula():
    from impediments.experiments.part1.zigzag import condition_number, predicted_condition_number

    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 2.0, size=(200_000, 2))
    assert math.isclose(condition_number(x), predicted_condition_number(1.0, 2.0), rel_tol=0.02)
    assert condition_number(x - x.mean(0)) < 1.02


def test_dead_units_matches_brute_force():
    import torch

    from impediments.experiments.part1.dead_bias import dead_units
    from impediments.models import mlp

    torch.manual_seed(0)
    model = mlp(5, 3, width=40, depth=2, activation="relu")
    with torch.no_grad():
        model.hidden1.linear.bias.copy_(torch.linspace(-6, 2, 40))
    X = torch.randn(50, 5)
    got = dead_units(model, X, ["hidden1.act", "hidden2.act"])
    h1 = torch.relu(model.hidden1.linear(X))
    h2 = torch.relu(model.hidden2.linear(h1))
    assert torch.equal(got["hidden1.act"], (h1 == 0).all(0)) and torch.equal(got["hidden2.act"], (h2 == 0).all(0))
    assert 0 < int(got["hidden1.act"].sum()) < 40
    assert not model.hidden1.act._forward_hooks, "hooks are removed"


def test_depth_distributions_init_stds_match_torch():
    import torch

    from impediments.experiments.part1.depth_distributions import Config, init_std

    torch.manual_seed(0)
    w = torch.empty(300, 500)
    cfg = Config()
    for scheme, fill in (("glorot", torch.nn.init.xavier_normal_),
                         ("he", lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"))):
        fill(w)
        assert math.isclose(float(w.std()), init_std(scheme, 500, 300, cfg), rel_tol=0.01), scheme


def test_glorot_he_init_linear_matches_formulas():
    import torch

    from impediments.experiments.part1.glorot_he import init_linear

    lin = torch.nn.Sequential(torch.nn.Linear(400, 600))
    for scheme, var in (("standard", 1 / (3 * 400)), ("normalized", 2 / 1000), ("glorot", 2 / 1000),
                        ("he", 2 / 400)):
        init_linear(lin, scheme, seed=0)
        w = lin[0].weight.detach()
        assert math.isclose(float(w.var()), var, rel_tol=0.02), scheme
        assert float(lin[0].bias.detach().abs().max()) == 0
    init_linear(lin, "standard", seed=0)
    assert float(lin[0].weight.detach().abs().max()) <= 1 / 20


def test_residual_limits_models_fixup_identity_and_he_scale():
    import torch

    from impediments.experiments.part1.residual_limits import Config, build, feature_std

    cfg = Config(width=32)
    x = torch.randn(64, 6)
    fx = build(cfg, 5, "fixup", 6, 3)
    with torch.no_grad():
        stem = fx.stem(x)
        for k in range(1, 6):
            block = getattr(fx, f"block{k}")
            assert torch.equal(block(stem), stem), "every Fixup block starts as the identity"
        assert torch.equal(fx(x), torch.zeros(64, 3)), "Fixup zeroes the classifier"
    he = build(cfg, 5, "he", 6, 3)
    for name, m in he.named_modules():
        if isinstance(m, torch.nn.Linear) and name != "stem":
            assert math.isclose(float(m.weight.detach().std()), math.sqrt(2 / m.in_features), rel_tol=0.2), name
    assert feature_std(he, x) > feature_std(fx, x)


def test_linear_depth_collapse_is_the_composed_affine_map_and_only_for_linear_stacks():
    import torch

    from impediments.experiments.part1.linear_depth import collapse, collapse_error
    from impediments.models import mlp

    torch.manual_seed(0)
    deep = mlp(7, 3, width=5, depth=3, activation="identity")
    A, c = collapse(deep)
    X = torch.randn(20, 7, dtype=torch.float64)
    layers = [m for m in deep.modules() if isinstance(m, torch.nn.Linear)]
    h = X
    for layer in layers:                                    # brute force: apply each layer in float64
        h = h @ layer.weight.double().T + layer.bias.double()
    torch.testing.assert_close(X @ A.T + c, h)
    assert collapse_error(deep, X.float()) < 1e-5
    relu = mlp(7, 3, width=5, depth=3, activation="relu")
    assert collapse_error(relu, X.float()) > 1e-2, "a ReLU stack is not one affine map"


def test_autoencoder_pca_helpers_match_scipy_and_sklearn():
    import numpy as np
    from scipy.linalg import subspace_angles
    from sklearn.decomposition import PCA

    from impediments.experiments.part1.autoencoder_pca import pca, principal_angles

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((12, 3)), rng.standard_normal((12, 3))
    np.testing.assert_allclose(principal_angles(a, b), np.sort(subspace_angles(a, b)), atol=1e-10)
    assert np.allclose(principal_angles(a, a @ rng.standard_normal((3, 3))), 0, atol=1e-6)
    X = rng.standard_normal((200, 10)) @ rng.standard_normal((10, 10)) + 3.0
    top, mse = pca(X, 4)
    ref = PCA(n_components=4).fit(X)
    recon = ref.inverse_transform(ref.transform(X))
    assert math.isclose(mse, float(((X - recon) ** 2).mean()), rel_tol=1e-9)
    assert np.allclose(principal_angles(top, ref.components_.T), 0, atol=1e-6)


def test_glorot_he_jacobian_singular_values_match_autograd():
    import torch

    from impediments.experiments.part1.glorot_he import mean_jacobian_singular_value
    from impediments.models import mlp

    torch.manual_seed(0)
    model = mlp(6, 3, width=8, depth=3, activation="tanh").double()
    X = torch.randn(4, 6, dtype=torch.float64)
    outs = {}
    with torch.no_grad():
        h = X
        for k in (1, 2, 3):
            h = model.get_submodule(f"hidden{k}")(h)
            outs[k] = h
    expected = []
    for k in (1, 2):                                         # d z_{k+1} / d z_k by autograd, example by example
        block = model.get_submodule(f"hidden{k + 1}")
        for i in range(len(X)):
            J = torch.autograd.functional.jacobian(block, outs[k][i:i + 1]).reshape(8, 8)
            expected.append(torch.linalg.svdvals(J).mean())
    assert math.isclose(mean_jacobian_singular_value(model, outs, 3), float(torch.stack(expected).mean()),
                        rel_tol=1e-9)
