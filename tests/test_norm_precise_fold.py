"""PreciseBN, BN folding, variance shift and the moments accumulator, against brute force."""
import copy
import warnings

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from impediments import norm
from impediments.models import cnn1d, cnn2d, mlp
from impediments.norm.fold import foldable_pairs

BN = {"torch": lambda c: nn.BatchNorm1d(c), "ours": lambda c: norm.BatchNorm(c)}


def two_bn_net(kind: str) -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, 6), BN[kind](6), nn.ReLU(), nn.Linear(6, 4), BN[kind](4))


def make_batches(k=5, n=16, d=5):
    return [torch.randn(n, d) * (1 + j) + j for j in range(k)]


def snapshot(model):
    return copy.deepcopy(model.state_dict()), [m.training for m in model.modules()]


def test_channel_moments_equal_brute_force_and_merge():
    xs = [torch.randn(4, 3, 5) * 3 + 7, torch.randn(9, 3, 2) - 1, torch.randn(1, 3, 1)]
    a, b = norm.ChannelMoments(3), norm.ChannelMoments(3)
    a.update(xs[0])
    b.update(xs[1])
    b.update(xs[2])
    mean, var = a.merge(b).compute()
    flat = torch.cat([x.transpose(0, 1).reshape(3, -1) for x in xs], 1).double()
    assert a.count == flat.shape[1]
    assert_close(mean, flat.mean(1))
    assert_close(var, flat.var(1))
    with pytest.raises(ValueError, match="expected 3 channels"):
        a.update(torch.randn(2, 4))
    with pytest.raises(ValueError, match="at least 2 values"):
        norm.ChannelMoments(2).compute()


@pytest.mark.parametrize("kind", ["torch", "ours"])
def test_precise_bn_equals_brute_force_population_statistics(kind):
    model = two_bn_net(kind)
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.weight.normal_()
            bn.bias.normal_()
    batches = make_batches()
    model.eval()
    params_before = {k: v.clone() for k, v in model.named_parameters()}
    nbt_before = int(model[1].num_batches_tracked)
    counts = norm.recompute_bn_stats(model, batches)
    # brute force: every value each BN saw, with BN1 normalizing by batch statistics upstream of BN2
    with torch.no_grad():
        h1 = [model[0](x) for x in batches]
        h2 = [model[3](torch.relu(nn.functional.batch_norm(h, None, None, model[1].weight, model[1].bias, True)))
              for h in h1]
    for bn, values in ((model[1], torch.cat(h1)), (model[4], torch.cat(h2))):
        assert_close(bn.running_mean, values.mean(0), rtol=1e-5, atol=1e-5)
        assert_close(bn.running_var, values.var(0, unbiased=True), rtol=1e-5, atol=1e-5)
    assert counts == {"1": 80, "4": 80}
    assert all(torch.equal(v, params_before[k]) for k, v in model.named_parameters())
    assert int(model[1].num_batches_tracked) == nbt_before
    assert not model.training and not model[1].training


def test_precise_bn_on_conv_features_and_max_batches():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), norm.BatchNorm(3))
    batches = [(torch.randn(4, 2, 10) + j, torch.zeros(4)) for j in range(6)]  # (inputs, targets) tuples
    norm.recompute_bn_stats(model.train(), batches, max_batches=4)
    with torch.no_grad():
        values = torch.cat([model[0](x) for x, _ in batches[:4]]).transpose(0, 1).reshape(3, -1)
    assert_close(model[1].running_mean, values.mean(1), rtol=1e-5, atol=1e-5)
    assert_close(model[1].running_var, values.var(1), rtol=1e-5, atol=1e-5)
    assert model.training


def test_precise_bn_reads_any_batch_form_with_forward():
    model = cnn1d(norm="batch")
    batches = [{"x": torch.randn(8, 40)} for _ in range(3)]
    counts = norm.recompute_bn_stats(model, batches, forward=lambda m, b: m(b["x"]))
    assert counts == {"conv1.norm": 3 * 8 * 20, "conv2.norm": 3 * 8 * 10, "conv3.norm": 3 * 8 * 5}


def test_precise_bn_skips_frozen_layers_and_the_fixed_model_evaluates_better():
    torch.manual_seed(1)
    model = mlp(5, 3, width=8, depth=2, norm="batch")
    norm.freeze(model.hidden1)
    frozen_before = {k: v.clone() for k, v in model.hidden1.norm.state_dict().items()}
    norm.recompute_bn_stats(model, make_batches(3))
    assert all(torch.equal(v, model.hidden1.norm.state_dict()[k]) for k, v in frozen_before.items())
    assert not torch.equal(model.hidden2.norm.running_var, torch.ones(8))


def test_precise_bn_bad_input():
    model = two_bn_net("ours")
    with pytest.raises(ValueError, match="empty iterable"):
        norm.recompute_bn_stats(model, [])
    with pytest.raises(ValueError, match="empty iterable"):
        norm.recompute_bn_stats(model, iter(()))
    with pytest.raises(TypeError, match="iterable of batches"):
        norm.recompute_bn_stats(model, torch.randn(4, 5))
    with pytest.raises(ValueError, match="max_batches"):
        norm.recompute_bn_stats(model, make_batches(), max_batches=0)
    with pytest.raises(ValueError, match="no BatchNorm"):
        norm.recompute_bn_stats(nn.Linear(5, 2), make_batches())
    with pytest.raises(TypeError, match="nn.Module"):
        norm.recompute_bn_stats("model", make_batches())
    with pytest.raises(TypeError, match="forward=lambda"):
        norm.recompute_bn_stats(model, ["not a tensor"])


def test_precise_bn_leaves_model_unchanged_on_error_and_warns_for_unused_layers():
    model = two_bn_net("torch")
    state = snapshot(model)

    def broken(m, batch):
        m(batch)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        norm.recompute_bn_stats(model, make_batches(), forward=broken)
    after = snapshot(model)
    assert all(torch.equal(v, after[0][k]) for k, v in state[0].items()) and state[1] == after[1]
    with pytest.warns(RuntimeWarning, match="'4' saw 0 values"):
        norm.recompute_bn_stats(model, make_batches(), forward=lambda m, b: m[:3](b))


def trained(model, x, steps=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        model.train()(x).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():
        for m in model.modules():
            if norm.is_batch_norm(m):
                m.weight.normal_()
                m.bias.normal_()
    return model.eval()


@pytest.mark.parametrize("make,x", [
    (lambda: mlp(10, 4, width=16, depth=3, norm="batch"), torch.randn(32, 10) * 2 + 1),
    (lambda: mlp(10, 4, width=16, depth=2, norm="batch", bias=False), torch.randn(32, 10)),
    (lambda: cnn1d(norm="batch"), torch.randn(16, 40)),
    (lambda: cnn2d((1, 8, 8), norm="batch", bias=False), torch.randn(8, 64)),
    (lambda: nn.Sequential(nn.Linear(6, 5), norm.BatchNorm(5), nn.Tanh(), nn.Linear(5, 5), norm.BatchNorm(5)),
     torch.randn(12, 6)),
])
def test_fold_bn_outputs_equal_the_original_in_eval_mode(make, x):
    model = trained(make(), x)
    original = copy.deepcopy(model.state_dict())
    pairs = foldable_pairs(model)
    assert pairs, "each of these models has Linear/Conv → BN pairs"
    folded = norm.fold_bn(model)
    assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert not any(norm.is_batch_norm(m) for m in folded.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())  # original untouched
    assert not any(p.requires_grad for p in folded.parameters()) and not folded.training
    for layer_name, bn_name in pairs:
        assert isinstance(dict(folded.named_modules())[bn_name], nn.Identity)


def test_fold_bn_leaves_unfoldable_bn_frozen_and_names_pairs():
    model = trained(mlp(6, 3, width=8, depth=2, norm="batch", norm_position="post"), torch.randn(20, 6))
    assert foldable_pairs(model) == []  # BN after the activation cannot be folded
    folded = norm.fold_bn(model)
    x = torch.randn(9, 6)
    assert_close(folded.train()(x), model.eval()(x))  # still inference semantics after .train()
    assert foldable_pairs(mlp(6, 3, width=8, depth=2, norm="batch")) == [("hidden1.linear", "hidden1.norm"),
                                                                         ("hidden2.linear", "hidden2.norm")]
    with pytest.raises(TypeError, match="nn.Module"):
        norm.fold_bn([nn.Linear(2, 2)])


def dropout_then_bn(rate, kind="torch"):
    return nn.Sequential(nn.Dropout(rate), BN[kind](16))


@pytest.mark.parametrize("kind", ["torch", "ours"])
@pytest.mark.parametrize("rate", [0.5, 0.2])
def test_variance_shift_is_one_over_keep_probability_for_dropout_before_bn(kind, rate):
    batches = [torch.randn(256, 16) for _ in range(20)]
    model = dropout_then_bn(rate, kind)
    state = snapshot(model)
    ratios = norm.variance_shift(model, batches)
    assert list(ratios) == ["1"]
    assert ratios["1"] == pytest.approx(1 / (1 - rate), rel=0.05)
    after = snapshot(model)
    assert all(torch.equal(v, after[0][k]) for k, v in state[0].items()) and state[1] == after[1]


@pytest.mark.parametrize("kind", ["torch", "ours"])
def test_variance_shift_is_one_when_dropout_comes_after_bn(kind):
    model = nn.Sequential(nn.Linear(16, 16), BN[kind](16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))
    ratios = norm.variance_shift(model, [torch.randn(64, 16) for _ in range(5)])
    assert ratios["1"] == pytest.approx(1.0, abs=1e-6)


def test_variance_shift_in_a_library_model_and_bad_input():
    model = cnn1d(norm="batch", norm_position="post", dropout=0.5)  # dropout feeds the next block's conv
    ratios = norm.variance_shift(model.eval(), [torch.randn(32, 40) for _ in range(4)])
    assert set(ratios) == {"conv1.norm", "conv2.norm", "conv3.norm"}
    assert ratios["conv1.norm"] == pytest.approx(1.0, abs=1e-6)
    assert ratios["conv2.norm"] > 1.2  # downstream of dropout: shifted
    assert not model.training
    with pytest.raises(ValueError, match="empty iterable"):
        norm.variance_shift(model, [])
    with pytest.raises(ValueError, match="no BatchNorm"):
        norm.variance_shift(nn.Sequential(nn.Dropout(0.5)), [torch.randn(3, 2)])
    with pytest.raises(TypeError, match="nn.Module"):
        norm.variance_shift(None, [torch.randn(3, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm.variance_shift(model, [torch.randn(8, 40)], max_batches=1)


def test_variance_shift_and_precise_bn_leave_the_callers_rng_alone():
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(4))
    batches = [torch.randn(8, 4)]
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    norm.variance_shift(model, batches)
    norm.recompute_bn_stats(model.train(), batches)
    assert torch.equal(torch.rand(3), expected)
