import math

import pytest
import torch
from torch import nn

from impediments import init
from impediments.models import ResidualBlock, mlp


def _linear_output_variances(model, x):
    out = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: out.__setitem__(n, float(o.double().var(correction=0))))
             for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


# -- LSUV -----------------------------------------------------------------------------------------------------
def test_lsuv_brings_a_20_layer_tanh_mlp_to_unit_variance():
    model = mlp(32, 10, width=64, depth=20, activation="tanh")
    batch = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
    default = _linear_output_variances(model, batch)
    assert default["hidden20.linear"] < 0.1  # PyTorch's default init lets the variance vanish
    rows = init.lsuv(model, batch, tol=0.1, max_iters=10, seed=0)
    assert [r.name for r in rows] == [f"hidden{k}.linear" for k in range(1, 21)] + ["output"]
    assert all(r.converged and r.iterations <= 10 for r in rows)
    measured = _linear_output_variances(model, batch)  # independent re-measurement, every layer
    for r in rows:
        assert abs(measured[r.name] - 1) < 0.1
        assert measured[r.name] == pytest.approx(r.variance, rel=1e-6)
    # still orthogonal directions after rescaling (orthonormal pre-init, scaled)
    w = model.hidden7.linear.weight.detach().double()
    gram = w @ w.T
    torch.testing.assert_close(gram / gram[0, 0], torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(model.hidden3.linear.bias.detach().abs().max()) == 0


def test_lsuv_tight_tol_and_mode_restored():
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4)).train()
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    rows = init.lsuv(model, batch, tol=1e-3, seed=0)
    assert all(abs(r.variance - 1) < 1e-3 for r in rows)
    assert model.training and int(model[1].num_batches_tracked) == 0  # eval-mode forwards, BN untouched


def test_lsuv_reports_non_convergence():
    """Zero biases: the output is linear in W, one rescaling suffices. Biases spread across units
    (kept with bias=None) add a variance no weight scaling removes: LSUV stops at max_iters."""
    model = nn.Linear(8, 8)
    batch = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    (row,) = init.lsuv(model, batch, tol=1e-4, max_iters=3, seed=0)
    assert row.converged and row.iterations == 1
    with torch.no_grad():
        model.bias.copy_(torch.arange(8.0) - 3.5)  # variance 5.25 across units
    (row,) = init.lsuv(model, batch, max_iters=3, bias=None, seed=0)
    assert not row.converged and row.iterations == 3 and row.variance > 5.25


def test_lsuv_constant_output_is_a_clear_error():
    with pytest.raises(ValueError, match=r"layer '0' produces constant output"):
        init.lsuv(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), torch.zeros(16, 4))
    dead = nn.Sequential(nn.Linear(4, 8), nn.Threshold(1e9, 0.0), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"layer '2' produces constant output.*dead"):
        init.lsuv(dead, torch.randn(16, 4))


@pytest.mark.parametrize("kwargs,match", [({"tol": 0.0}, "tol"), ({"tol": 1.5}, "tol"), ({"max_iters": 0}, "max_iters")])
def test_lsuv_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        init.lsuv(nn.Linear(3, 3), torch.randn(4, 3), **kwargs)


# -- Fixup ----------------------------------------------------------------------------------------------------
def _head_input_variance(model, x):
    seen = {}
    h = model.head_act.register_forward_pre_hook(lambda m, a: seen.__setitem__("v", float(a[0].var())))
    with torch.no_grad():
        model(x)
    h.remove()
    return seen["v"]


def test_fixup_zero_logits_and_flat_variance_with_depth():
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(1))
    fixup_vars, he_vars = [], []
    for depth in (2, 8, 32):
        model = mlp(16, 10, width=64, depth=depth, residual=True)
        summary = init.fixup(model, seed=0)
        assert summary.blocks == depth and summary.layers_per_branch == 2 and summary.classifier == "output"
        assert summary.branch_scale == pytest.approx(depth ** -0.5)
        with torch.no_grad():
            logits = model(x)
        assert torch.equal(logits, torch.zeros_like(logits))
        fixup_vars.append(_head_input_variance(model, x))
        he = mlp(16, 10, width=64, depth=depth, residual=True)
        init.initialize(he, "he_normal", seed=0)
        he_vars.append(_head_input_variance(he, x))
    # same stem seed: the residual stream is the stem output at every depth
    assert fixup_vars == pytest.approx([fixup_vars[0]] * 3, rel=1e-6)
    assert he_vars[2] > 100 * he_vars[0]  # He init without normalization explodes with depth


def test_fixup_layers_and_scalars():
    depth, width = 9, 256
    model = mlp(16, 10, width=width, depth=depth, residual=True)
    n_before = sum(p.numel() for p in model.parameters())
    init.fixup(model, seed=0)
    assert sum(p.numel() for p in model.parameters()) == n_before + depth * 6  # 1 multiplier + 5 biases
    for block in (m for m in model.modules() if isinstance(m, ResidualBlock)):
        assert float(block.branch.linear2.weight.detach().abs().max()) == 0
        expected = math.sqrt(2 / width) * depth ** (-1 / 2)  # He std times L^(-1/(2m-2)), m = 2
        assert float(block.branch.linear1.weight.detach().std()) == pytest.approx(expected, rel=0.02)
        assert float(block.fixup_scale.detach()) == 1.0
        assert all(float(b.detach()) == 0 for b in block.fixup_biases.values())
    init.fixup(model, seed=0)  # idempotent: no second set of scalars
    assert sum(p.numel() for p in model.parameters()) == n_before + depth * 6


def test_fixup_block_forward_matches_its_equation():
    block = ResidualBlock(6, activation_name="tanh", norm=None, dropout=0.0, bias=True)
    block.enable_fixup()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        block.fixup_scale.fill_(0.7)
        for p in block.fixup_biases.values():
            p.copy_(torch.randn((), generator=g))
    b, br = block.fixup_biases, block.branch
    x = torch.randn(5, 6, generator=g)
    h = br.linear1(torch.tanh(x + b["act1"]) + b["linear1"])
    h = br.linear2(torch.tanh(h + b["act2"]) + b["linear2"])
    torch.testing.assert_close(block(x), x + 0.7 * h + b["out"])


def test_fixup_model_trains():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 16, generator=g)
    y = x[:, :4].argmax(1)  # a learnable rule
    model = mlp(16, 4, width=32, depth=16, residual=True)
    init.fixup(model, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(math.log(4), rel=1e-6) and losses[-1] < 0.5 * losses[0]


def test_fixup_bad_input():
    with pytest.raises(ValueError, match="residual blocks.*residual=True"):
        init.fixup(mlp(4, 2, width=4, depth=2))
    with pytest.raises(TypeError, match="nn.Module"):
        init.fixup(torch.zeros(3))


# -- layer-wise pre-training ----------------------------------------------------------------------------------
def test_pretraining_lowers_each_layers_reconstruction_loss():
    from impediments.data import load_dataset

    data = load_dataset("digits", seed=0)
    model = mlp(64, 10, width=32, depth=3, activation="sigmoid")
    output_before = model.output.weight.clone()
    hidden_before = model.hidden2.linear.weight.clone()
    names_before = [n for n, _ in model.named_parameters()]
    history = init.pretrain_layerwise(model, data, epochs_per_layer=3, lr=3e-3, seed=0)
    assert [h.name for h in history] == ["hidden1", "hidden2", "hidden3"]
    for h in history:
        assert len(h.losses) == 4
        assert h.losses[-1] < 0.7 * h.losses[0], h
    assert torch.equal(model.output.weight, output_before)  # the classifier is not pre-trained
    assert not torch.equal(model.hidden2.linear.weight, hidden_before)
    assert [n for n, _ in model.named_parameters()] == names_before  # decoders discarded
    assert model.training


def test_pretraining_is_greedy():
    """Training a block never changes the blocks below it."""
    x = torch.randn(200, 10, generator=torch.Generator().manual_seed(0))
    model = mlp(10, 3, width=8, depth=2, activation="tanh")
    snapshots = []
    model.hidden2.register_forward_pre_hook(lambda m, a: snapshots.append(model.hidden1.linear.weight.clone()))
    init.pretrain_layerwise(model, x, epochs_per_layer=2, batch_size=50)
    assert len(snapshots) > 1 and all(torch.equal(s, snapshots[0]) for s in snapshots)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: init.pretrain_layerwise(ResidualBlock(4, activation_name="relu", norm=None, dropout=0, bias=True),
                                         torch.randn(8, 4), epochs_per_layer=1), TypeError, "nn.Sequential"),
        (lambda: init.pretrain_layerwise(nn.Sequential(nn.Linear(4, 2)), torch.randn(8, 4), epochs_per_layer=1),
         ValueError, "hidden block"),
        (lambda: init.pretrain_layerwise(mlp(4, 2, width=3, depth=1), torch.randn(8, 4), epochs_per_layer=0),
         ValueError, "epochs_per_layer"),
        (lambda: init.pretrain_layerwise(mlp(4, 2, width=3, depth=1), [[1.0] * 4], epochs_per_layer=1),
         TypeError, "list"),
    ],
)
def test_pretraining_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
