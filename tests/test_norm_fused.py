"""The fused fast path equals the explicit reference path, forward and backward, on random shapes."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

from impediments import norm
from impediments.norm import fused
from impediments.norm.fused import reference_path

SHAPES = [(5, 3), (7, 4, 6), (3, 6, 5, 4), (2, 4, 3, 2, 3)]


def _layers(c: int):
    return {"batch": norm.BatchNorm(c), "batch_cumulative": norm.BatchNorm(c, momentum=None),
            "batch_untracked": norm.BatchNorm(c, track_running_stats=False),
            "group": norm.GroupNorm(2 if c % 2 == 0 else 1, c), "instance": norm.InstanceNorm(c, affine=True)}


def _run(layer, x, g, steps: int = 2):
    """Outputs, input/parameter gradients and buffers after ``steps`` forward+backward calls."""
    outs, grads = [], []
    for _ in range(steps):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        y.backward(g)
        outs.append(y.detach())
        grads.append(xi.grad)
    params = [p.grad.clone() for p in layer.parameters() if p.grad is not None]
    return outs, grads, params, [b.clone() for b in layer.buffers()]


def _assert_paths_equal(layer, x, g, dtype):
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    fast_layer, ref_layer = copy.deepcopy(layer), copy.deepcopy(layer)
    fast = _run(fast_layer, x, g)
    with reference_path():
        ref = _run(ref_layer, x, g)
    for got, want in zip(fast, ref):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_equals_reference_training_and_inference(shape, dtype):
    gen = torch.Generator().manual_seed(hash(shape) % 1000)
    x = (torch.randn(shape, generator=gen, dtype=dtype) * 3 + 1)
    g = torch.randn(shape, generator=gen, dtype=dtype)
    for name, layer in _layers(shape[1]).items():
        if name == "instance" and len(shape) < 3:
            continue
        layer = layer.to(dtype)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
        _assert_paths_equal(layer.train(), x, g, dtype)
        if name.startswith("batch") and layer.track_running_stats:
            layer(x)  # move the running statistics off their initial values
            _assert_paths_equal(layer.eval(), x, g, dtype)
            frozen = copy.deepcopy(layer)
            norm.freeze(frozen)
            _assert_paths_equal(frozen.train(), x, g, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_layer_norm_equals_reference(dtype):
    gen = torch.Generator().manual_seed(3)
    for shape, normalized in [((4, 7), 7), ((3, 5, 6), (5, 6)), ((2, 3, 4, 5), 5)]:
        layer = norm.LayerNorm(normalized).to(dtype)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
        x, g = torch.randn(shape, generator=gen, dtype=dtype) * 2, torch.randn(shape, generator=gen, dtype=dtype)
        _assert_paths_equal(layer, x, g, dtype)


def test_fused_path_matches_torch_layers_and_is_taken():
    """The fast path really runs (a native backward node) and agrees with torch's own modules."""
    x = torch.randn(8, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    ours, theirs = norm.BatchNorm(4).double(), torch.nn.BatchNorm2d(4).double()
    y = ours(x)
    assert "NativeBatchNorm" in type(y.grad_fn).__name__
    torch.testing.assert_close(y, theirs(x))
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    with reference_path():
        assert "NativeBatchNorm" not in type(ours(x).grad_fn).__name__
    half = norm.BatchNorm(4).to(torch.bfloat16)
    assert not fused.eligible(x.to(torch.bfloat16), half.weight)


def test_fused_path_still_warns_on_nonfinite_input():
    for layer, x in [(norm.BatchNorm(3), torch.randn(4, 3)), (norm.LayerNorm(3), torch.randn(4, 3)),
                     (norm.GroupNorm(1, 3), torch.randn(4, 3, 2))]:
        x[1, 1] = float("inf")
        with pytest.warns(norm.NonFiniteInputWarning):
            layer(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            layer(torch.randn_like(x))
