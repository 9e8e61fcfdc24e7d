r"""The normalization math as autograd Functions, each analytic backward next to its forward.

With ``g = ∂L/∂z`` and ŷ the normalized input over the ``m`` values that
share the statistics:

.. math::

    \frac{\partial L}{\partial y_i} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
      \Big(g_i - \frac{1}{m}\sum_j g_j - \hat y_i \frac{1}{m}\sum_j g_j \hat y_j\Big),
    \quad \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat y_i,
    \quad \frac{\partial L}{\partial \beta} = \sum_i g_i

Like torch's own kernels, the Functions save the input, μ and 1/√(σ²+ε)
(not ŷ). Double backward (``create_graph=True``) differentiates the same
equations written as plain torch ops (``*_composite``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _bn_composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """The four equations in plain differentiable ops (used for double backward)."""
    dims = 0 if x.dim() == 2 else (0, 2)
    col = (lambda t: t) if x.dim() == 2 else (lambda t: t.unsqueeze(1))
    mean = x.mean(dims)
    var = (x - col(mean)).square().mean(dims)
    y = (x - col(mean)) * col(torch.rsqrt(var + eps))
    y = y * col(weight) if weight is not None else y
    return y + col(bias) if bias is not None else y


def _row_composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, dims: tuple[int, ...]) -> Tensor:
    """Per-row normalization in plain differentiable ops (used for double backward)."""
    mean = x.mean(dims, keepdim=True)
    y = (x - mean) * torch.rsqrt((x - mean).square().mean(dims, keepdim=True) + eps)
    y = y * weight if weight is not None else y
    return y + bias if bias is not None else y


def _double_backward(composite, ctx, gy: Tensor, x: Tensor, weight: Tensor | None, bias: Tensor | None, *extra):
    """Under ``create_graph=True``: differentiate the composite formula, keeping the graph."""
    wanted = [t for t, need in zip((x, weight, bias), ctx.needs_input_grad[:3]) if t is not None and need]
    with torch.enable_grad():
        y = composite(x, weight, bias, ctx.eps, *extra)
        grads = iter(torch.autograd.grad(y, wanted, gy, create_graph=True))
    out = [next(grads) if t is not None and need else None
           for t, need in zip((x, weight, bias), ctx.needs_input_grad[:3])]
    return (*out, None)


class BatchNormFn(torch.autograd.Function):
    """Training-mode BatchNorm on ``(N, C)`` or ``(N, C, S)``: batch statistics per channel.

    ``apply(x, weight, bias, eps, stats)`` returns y and appends the
    (non-differentiable) batch ``(mean, biased var)`` to the list ``stats``.

    Saves the input, μ and 1/√(σ²+ε) (as native BatchNorm does), not x̂.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, stats):  # type: ignore[override]
        dense = x.dim() == 2
        dims = 0 if dense else (0, 2)
        col = (lambda t: t) if dense else (lambda t: t.unsqueeze(1))
        m = x.numel() // x.shape[1]
        mean = x.sum(dims).div_(m)                                   # (1) batch mean
        xc = x - col(mean)
        var = (xc * xc).sum(dims).div_(m)                            # (2) biased batch variance
        invstd = (var + eps).rsqrt_()
        scale = invstd if weight is None else invstd * weight         # γ/√(σ²+ε)
        if bias is None:                                             # (3) and (4)
            y = xc.mul_(col(scale))
        elif dense:  # one fused pass; addcmul is slow when the parameters broadcast along the inner axis
            y = torch.addcmul(bias, xc, scale, out=xc)
        else:
            y = xc.mul_(col(scale)).add_(col(bias))
        ctx.save_for_backward(x, weight, bias)
        ctx.mean, ctx.invstd, ctx.scale = mean, invstd, scale  # intermediates may live on ctx
        ctx.dims, ctx.m, ctx.eps = dims, m, eps
        stats.append((mean, var))
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, weight, bias = ctx.saved_tensors
        mean, invstd, scale = ctx.mean, ctx.invstd, ctx.scale
        if torch.is_grad_enabled():
            return (*_double_backward(_bn_composite, ctx, gy, x, weight, bias), None)
        dims, m = ctx.dims, ctx.m
        dense = x.dim() == 2
        col = (lambda t: t) if dense else (lambda t: t.unsqueeze(1))
        xc = x - col(mean)
        sum_g = gy.sum(dims)                                         # ∂L/∂β = Σ g
        tmp = gy * xc
        gw = tmp.sum(dims).mul_(invstd)                              # ∂L/∂γ = Σ g ŷ
        # ∂L/∂y = s·g − s·Σg/m − s·ŷ·Σ(g ŷ)/m with s = γ/√(σ²+ε): one per-channel affine map of (g, y − μ)
        # (written into the temporary: large CPU allocations cost page faults)
        k = gw * scale * invstd
        if dense:
            gx = torch.addcmul((sum_g * scale).mul_(-1 / m), gy, scale, out=tmp)
        else:
            gx = torch.mul(gy, col(scale), out=tmp).add_(col(sum_g * scale), alpha=-1 / m)
        gx = gx.addcmul_(xc, col(k), value=-1 / m)
        return gx, gw if ctx.needs_input_grad[1] else None, sum_g if ctx.needs_input_grad[2] else None, None, None


class RowNormFn(torch.autograd.Function):
    """Normalize over the trailing ``dims`` axes of ``x`` (LayerNorm, GroupNorm), then ``γ ŷ + β``.

    ``weight`` and ``bias`` broadcast against ``x``; their gradients are
    summed back to their shapes. Saves the input, μ and 1/√(σ²+ε).
    ``apply(x, weight, bias, eps, dims, stats)`` appends the per-row biased
    variance to the list ``stats``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, dims, stats):  # type: ignore[override]
        k = math.prod(x.shape[d] for d in dims)
        mean = x.sum(dims, keepdim=True).div_(k)
        xc = x - mean
        var = (xc * xc).sum(dims, keepdim=True).div_(k)
        invstd = (var + eps).rsqrt_()
        y = xc.mul_(invstd)
        if weight is not None and bias is not None and weight.shape[-1] != 1:
            y = torch.addcmul(bias, y, weight, out=y)  # one fused pass (fast unless broadcast on the inner axis)
        else:
            y = y if weight is None else y.mul_(weight)
            y = y if bias is None else y.add_(bias)
        ctx.save_for_backward(x, weight, bias)
        ctx.mean, ctx.invstd = mean, invstd  # intermediates may live on ctx
        ctx.eps, ctx.dims, ctx.k = eps, dims, k
        stats.append(var)
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, weight, bias = ctx.saved_tensors
        mean, invstd = ctx.mean, ctx.invstd
        if torch.is_grad_enabled():
            return (*_double_backward(_row_composite, ctx, gy, x, weight, bias, ctx.dims), None, None)
        dims, k = ctx.dims, ctx.k
        xhat = (x - mean).mul_(invstd)
        g = gy if weight is None else gy * weight
        tmp = g * xhat
        dot, sum_g = tmp.sum(dims, keepdim=True), g.sum(dims, keepdim=True)
        gw = torch.mul(gy, xhat, out=tmp).sum_to_size(weight.shape) if ctx.needs_input_grad[1] else None
        gb = gy.sum_to_size(bias.shape) if ctx.needs_input_grad[2] else None
        # ∂L/∂y = (g − Σg/k − ŷ Σ(g ŷ)/k) / √(σ²+ε), written over ŷ (large CPU allocations cost page faults)
        gx = xhat.mul_(dot.mul_(-1 / k)).add_(g).sub_(sum_g, alpha=1 / k).mul_(invstd)
        return gx, gw, gb, None, None, None
