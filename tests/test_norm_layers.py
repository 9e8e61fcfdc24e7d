"""impediments.norm layers against torch's own: forward, backward, running statistics, state_dict."""
import copy
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from impediments import norm
from impediments.norm import functional as F

TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.float64: {"rtol": 1e-9, "atol": 1e-10}}


def native_bn(c, dims, **kw):
    return (nn.BatchNorm1d if dims <= 3 else nn.BatchNorm2d if dims == 4 else nn.BatchNorm3d)(c, **kw)


def randomize(ours, ref):
    """Random γ, β (and running stats) in ours, copied into ref: both start identical."""
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
        if getattr(ours, "running_mean", None) is not None:
            ours.running_mean.normal_()
            ours.running_var.uniform_(0.5, 2.0)
    ref.load_state_dict(ours.state_dict())


def check_same(ours, ref, x, steps=3, dtype=torch.float32):
    """Several forward passes, then one backward: outputs, input/parameter grads and buffers agree."""
    tol = TOL[dtype]
    g = torch.randn(x.shape, dtype=dtype)
    for _ in range(steps):
        xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        yo, yr = ours(xo), ref(xr)
        assert_close(yo, yr, **tol)
    yo.backward(g)
    yr.backward(g)
    assert_close(xo.grad, xr.grad, **tol)
    for (name, po), pr in zip(ours.named_parameters(), ref.parameters()):
        assert_close(po.grad, pr.grad, **tol, msg=f"grad of {name}")
    for (name, bo), br in zip(ours.named_buffers(), ref.buffers()):
        assert_close(bo, br, **tol, msg=f"buffer {name}")


BN_SHAPES = [(7, 5), (4, 3, 9), (2, 3, 4, 5), (2, 2, 3, 2, 2), (60, 100), (3, 6, 1)]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0, None])
def test_batchnorm_matches_torch_in_training(shape, dtype, momentum):
    ours = norm.BatchNorm(shape[1], momentum=momentum, dtype=dtype)
    ref = native_bn(shape[1], len(shape), momentum=momentum, dtype=dtype)
    randomize(ours, ref)
    x = torch.randn(shape, dtype=dtype) * 3 + 2
    check_same(ours.train(), ref.train(), x, dtype=dtype)
    assert int(ours.num_batches_tracked) == 3


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_matches_torch_in_inference(shape):
    ours, ref = norm.BatchNorm(shape[1]), native_bn(shape[1], len(shape))
    randomize(ours, ref)
    check_same(ours.eval(), ref.eval(), torch.randn(shape))
    assert int(ours.num_batches_tracked) == 0


@pytest.mark.parametrize("affine,track", [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_options_match_torch(affine, track, training):
    ours = norm.BatchNorm(4, affine=affine, track_running_stats=track, eps=1e-3)
    ref = nn.BatchNorm1d(4, affine=affine, track_running_stats=track, eps=1e-3)
    randomize(ours, ref)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    check_same(ours.train(training), ref.train(training), torch.randn(6, 4, 3))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(2, 6), c=st.integers(1, 5), spatial=st.lists(st.integers(1, 4), max_size=2),
       momentum=st.one_of(st.none(), st.floats(0.0, 1.0)), eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batchnorm_matches_torch_hypothesis(n, c, spatial, momentum, eps):
    shape = (n, c, *spatial)
    ours = norm.BatchNorm(c, momentum=momentum, eps=eps, dtype=torch.float64)
    ref = native_bn(c, len(shape), momentum=momentum, eps=eps, dtype=torch.float64)
    randomize(ours, ref)
    check_same(ours, ref, torch.randn(shape, dtype=torch.float64), dtype=torch.float64)


def test_momentum_none_is_the_cumulative_average():
    ours, ref = norm.BatchNorm(3, momentum=None), nn.BatchNorm1d(3, momentum=None)
    batches = [torch.randn(8, 3) * (k + 1) + k for k in range(6)]
    for x in batches:
        ours(x), ref(x)
    assert_close(ours.running_mean, ref.running_mean)
    assert_close(ours.running_var, ref.running_var)
    # brute force: the plain average of the per-batch mean and unbiased variance
    # (the initial buffers get weight 0 at the first step)
    assert_close(ours.running_mean, torch.stack([x.mean(0) for x in batches]).mean(0))
    assert_close(ours.running_var, torch.stack([x.var(0) for x in batches]).mean(0))


def test_running_var_uses_unbiased_variance_and_inference_uses_it():
    """Keras-style check: momentum 1 copies the batch statistics; inference then uses m/(m−1)·σ²_B."""
    bn = norm.BatchNorm(3, momentum=1.0)
    x = torch.randn(5, 3, 4)
    y_train = bn(x)
    mean, var_b = x.mean((0, 2)), x.var((0, 2), unbiased=False)
    assert_close(y_train, (x - mean[:, None]) / torch.sqrt(var_b[:, None] + bn.eps))
    assert_close(bn.running_var, var_b * 20 / 19)
    y_eval = bn.eval()(x)
    assert_close(y_eval, (x - mean[:, None]) / torch.sqrt(var_b[:, None] * 20 / 19 + bn.eps))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_batchnorm_low_precision_input_matches_torch(dtype):
    ours, ref = norm.BatchNorm(4), nn.BatchNorm1d(4)
    x = torch.randn(16, 4, 5).to(dtype)
    yo, yr = ours(x), ref(x)
    assert yo.dtype == yr.dtype == dtype
    assert_close(yo.float(), yr.float(), rtol=2e-2, atol=2e-2)
    assert_close(ours.running_var, ref.running_var, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_layers_and_buffers_match_torch(dtype):
    x = torch.randn(8, 4, 3).to(dtype)
    pairs = [(norm.BatchNorm(4, dtype=dtype), nn.BatchNorm1d(4, dtype=dtype)),
             (norm.LayerNorm(3, dtype=dtype), nn.LayerNorm(3, dtype=dtype)),
             (norm.GroupNorm(2, 4, dtype=dtype), nn.GroupNorm(2, 4, dtype=dtype))]
    for ours, ref in pairs:
        for mode in (True, False):
            yo, yr = ours.train(mode)(x), ref.train(mode)(x)
            assert yo.dtype == dtype
            assert_close(yo.float(), yr.float(), rtol=2e-2, atol=2e-2)
    assert_close(pairs[0][0].running_var.float(), pairs[0][1].running_var.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("shape,normalized", [((6, 10), (10,)), ((3, 4, 5), (5,)), ((3, 4, 5), (4, 5)),
                                               ((2, 3, 4, 5), (3, 4, 5)), ((60, 100), (100,))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_matches_torch(shape, normalized, dtype, affine):
    ours = norm.LayerNorm(normalized, elementwise_affine=affine, dtype=dtype)
    ref = nn.LayerNorm(normalized, elementwise_affine=affine, dtype=dtype)
    randomize(ours, ref)
    x = torch.randn(shape, dtype=dtype) * 2 + 1
    check_same(ours, ref, x, steps=1, dtype=dtype)
    check_same(ours.eval(), ref.eval(), x, steps=1, dtype=dtype)


def test_layernorm_without_bias_matches_torch():
    ours, ref = norm.LayerNorm(6, bias=False), nn.LayerNorm(6, bias=False)
    randomize(ours, ref)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight"]
    check_same(ours, ref, torch.randn(4, 6), steps=1)


@pytest.mark.parametrize("groups,shape", [(1, (4, 6)), (2, (4, 6, 5)), (3, (2, 6, 3, 4)), (6, (3, 6, 7)),
                                          (5, (64, 25, 20)), (2, (2, 4, 2, 2, 3))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_matches_torch(groups, shape, dtype, affine):
    ours = norm.GroupNorm(groups, shape[1], affine=affine, dtype=dtype)
    ref = nn.GroupNorm(groups, shape[1], affine=affine, dtype=dtype)
    randomize(ours, ref)
    check_same(ours, ref, torch.randn(shape, dtype=dtype) + 0.5, steps=1, dtype=dtype)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(n=st.integers(1, 4), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(2, 4), min_size=1, max_size=2))
def test_groupnorm_matches_torch_hypothesis(n, groups, per_group, spatial):
    shape = (n, groups * per_group, *spatial)
    ours = norm.GroupNorm(groups, shape[1], dtype=torch.float64)
    ref = nn.GroupNorm(groups, shape[1], dtype=torch.float64)
    randomize(ours, ref)
    check_same(ours, ref, torch.randn(shape, dtype=torch.float64), steps=1, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(3, 4, 7), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [False, True])
def test_instancenorm_matches_torch(shape, affine):
    ours = norm.InstanceNorm(shape[1], affine=affine)
    ref = (nn.InstanceNorm1d if len(shape) == 3 else nn.InstanceNorm2d)(shape[1], affine=affine)
    randomize(ours, ref)
    check_same(ours, ref, torch.randn(shape), steps=1)


def test_instance_norm_functional_is_per_example_per_channel():
    x = torch.randn(3, 4, 6) * 5 + 2
    expected = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert_close(norm.instance_norm(x), expected)
    assert_close(norm.instance_norm(x), torch.nn.functional.instance_norm(x))


def test_gradcheck_float64():
    x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    w, b = (torch.randn(3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w2, b2 = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    checks = [
        (lambda x, w, b: F.batch_norm(x, None, None, w, b, True), (x, w, b)),
        (lambda x, w, b: F.batch_norm(x[..., 0], None, None, w, b, True), (x, w, b)),
        (lambda x, w, b: F.batch_norm(x.reshape(5, 3, 2, 2), None, None, w, b, True), (x, w, b)),
        (lambda x: F.batch_norm(x, None, None, None, None, True), (x,)),
        (lambda x, w, b: F.layer_norm(x, (3, 4), w, b), (x, w2, b2)),
        (lambda x, w, b: F.group_norm(x, 3, w, b), (x, w, b)),
        (lambda x: F.instance_norm(x), (x,)),
    ]
    for fn, inputs in checks:
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)


def test_inference_batchnorm_gradcheck_and_running_stats_untouched():
    bn = norm.BatchNorm(3, dtype=torch.float64).eval()
    randomize(bn, copy.deepcopy(bn))
    before = copy.deepcopy(bn.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bn, (x,))
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("make_ours,make_ref,x", [
    (lambda: norm.BatchNorm(4), lambda: nn.BatchNorm2d(4), torch.randn(3, 4, 2, 2)),
    (lambda: norm.BatchNorm(4, affine=False), lambda: nn.BatchNorm1d(4, affine=False), torch.randn(3, 4)),
    (lambda: norm.LayerNorm((4, 2)), lambda: nn.LayerNorm((4, 2)), torch.randn(3, 4, 2)),
    (lambda: norm.GroupNorm(2, 4), lambda: nn.GroupNorm(2, 4), torch.randn(3, 4, 5)),
    (lambda: norm.InstanceNorm(4, affine=True), lambda: nn.InstanceNorm1d(4, affine=True), torch.randn(3, 4, 5)),
])
def test_state_dict_round_trips_both_directions(make_ours, make_ref, x):
    ours, ref = make_ours(), make_ref()
    ours.train()(x * 2 + 1)  # move the running statistics away from their initial values
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
    ref.load_state_dict(ours.state_dict())          # ours → torch, strict
    assert_close(ref.eval()(x), ours.eval()(x))
    back = make_ours()
    back.load_state_dict(ref.state_dict())          # torch → ours, strict
    for (k, a), (k2, b) in zip(back.state_dict().items(), ours.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_old_checkpoint_without_num_batches_tracked_loads():
    state = nn.BatchNorm1d(3).state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # what torch < 0.4.1 wrote
    bn = norm.BatchNorm(3)
    bn.load_state_dict(state)
    assert int(bn.num_batches_tracked) == 0


def test_keras_momentum_conversion():
    assert F.from_keras_momentum(0.99) == pytest.approx(0.01)
    assert F.to_keras_momentum(0.1) == pytest.approx(0.9)
    ours = norm.BatchNorm(2, momentum=F.from_keras_momentum(0.9))
    x = torch.randn(6, 2)
    ours(x)
    assert_close(ours.running_mean, 0.9 * torch.zeros(2) + 0.1 * x.mean(0))  # Keras: m·old + (1−m)·new
    with pytest.raises(ValueError, match="keras_momentum"):
        F.from_keras_momentum(1.5)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 1), (1, 4, 1, 1)])
def test_batch_size_one_in_training_raises_like_torch(shape):
    bn = norm.BatchNorm(4)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(shape))
    assert int(bn.num_batches_tracked) == 0  # nothing changed
    with pytest.raises(ValueError):
        native_bn(4, len(shape))(torch.randn(shape))
    assert norm.BatchNorm(4).eval()(torch.randn(shape)).shape == shape  # inference is fine
    assert norm.BatchNorm(4)(torch.randn(1, 4, 2)).shape == (1, 4, 2)  # 2 values per channel is enough


@pytest.mark.parametrize("layer,x,match", [
    (norm.BatchNorm(4), torch.randn(3, 5), "expected 4 channels"),
    (norm.BatchNorm(4), torch.randn(3, 5, 2), "got input of shape"),
    (norm.BatchNorm(4).eval(), torch.randn(3, 5), "expected 4 channels"),
    (norm.BatchNorm(4), torch.randn(4), r"\(N, C\)"),
    (norm.GroupNorm(2, 4), torch.randn(3, 6, 2), r"\(N, 4, \*\)"),
    (norm.InstanceNorm(4), torch.randn(3, 4), "spatial axis"),
    (norm.LayerNorm(4), torch.randn(3, 5), r"trailing dimensions are \(4,\)"),
])
def test_wrong_channel_count_raises(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer(x)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match=r"num_groups=4 must divide num_channels=6; valid choices: \[1, 2, 3, 6\]"):
        norm.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="must divide"):
        F.group_norm(torch.randn(2, 6, 3), 4)


@pytest.mark.parametrize("make", [lambda: norm.BatchNorm(0), lambda: norm.BatchNorm(3, momentum=1.5),
                                  lambda: norm.BatchNorm(3, eps=0), lambda: norm.LayerNorm(()),
                                  lambda: norm.LayerNorm(-2), lambda: norm.GroupNorm(0, 4)])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_functional_inference_without_buffers_raises():
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        F.batch_norm(torch.randn(3, 2), None, None, training=False)


@pytest.mark.parametrize("make,x", [
    (lambda: norm.BatchNorm(3), torch.randn(6, 3, 2)),
    (lambda: norm.LayerNorm(3), torch.randn(6, 3)),
    (lambda: norm.GroupNorm(1, 3), torch.randn(6, 3, 2)),
])
def test_nan_input_warns_naming_the_layer(make, x):
    model = nn.Sequential()
    model.add_module("hidden1", nn.Sequential(nn.Identity(), make()))
    model[0][0].register_forward_hook(lambda m, i, out: out.index_fill(0, torch.tensor([1]), float("nan")))
    with pytest.warns(norm.NonFiniteInputWarning, match=r"layer 'hidden1\.1' \(.*Norm") as record:
        out = model(x)
    assert torch.isnan(out).any()
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model[0][0]._forward_hooks.clear()
        model(x)  # finite input: no warning


def test_nan_check_policy():
    bn = norm.BatchNorm(3)
    bad = torch.randn(4, 3)
    bad[0, 0] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn.eval()(bad)  # "auto": inference mode computes no statistics and is not checked
        bn.check_finite = False
        bn.train()(bad)
    bn.check_finite = True
    with pytest.warns(norm.NonFiniteInputWarning, match="1 of 12 input values"):
        bn.eval()(bad)
    with pytest.warns(norm.NonFiniteInputWarning, match="layer BatchNorm\\(3"):  # no parent: class repr
        norm.BatchNorm(3)(bad)


def test_process_wide_check_setting():
    bad = torch.full((4, 3), float("nan"))
    previous = norm.set_check_finite(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            norm.LayerNorm(3)(bad)
        explicit = norm.LayerNorm(3)
        explicit.check_finite = "auto"  # a per-layer setting wins
        with pytest.warns(norm.NonFiniteInputWarning):
            explicit(bad)
    finally:
        assert norm.set_check_finite(previous) is False
    with pytest.raises(ValueError, match="check_finite must be one of"):
        norm.set_check_finite("always")


def test_functional_forms_and_their_errors():
    x = torch.randn(4, 3)
    assert_close(F.layer_norm(x, 3), nn.functional.layer_norm(x, (3,)))
    with pytest.raises(ValueError, match="float momentum"):
        F.batch_norm(x, torch.zeros(3), torch.ones(3), training=True, momentum=None)
    with pytest.raises(ValueError, match="non-empty"):
        F.layer_norm(x, ())
