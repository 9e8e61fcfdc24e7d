"""The gradient through time of an ``nn.LSTM``/``nn.GRU``/``nn.RNN``, which its fused backward hides.

The module is re-run (its own weights, detached, without dropout) from its input, and one backward
of a random projection of its last output :math:`\\langle u, h_T \\rangle` gives

.. math:: e_k = \\operatorname{mean}_{b,j} \\Big(\\frac{\\partial \\langle u, h_T\\rangle}{\\partial x_{T-k,b,j}}\\Big)^2,
          \\quad k = 0 \\dots T-1,

the gradient energy reaching the input ``k`` steps back from the output (Bengio, Simard & Frasconi
1994; Pascanu, Mikolov & Bengio 2013). ``e_k / e_0`` falling toward zero is vanishing gradients
through time. ``u`` comes from a private generator, so training's random stream is untouched.
Checked against autograd through hand-stepped cells in ``tests/test_monitor_recurrent.py``.
"""
from __future__ import annotations

import torch
from torch import nn


def detached_state(hx):
    if hx is None:
        return None
    return tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()


def probe(like: torch.Tensor) -> torch.Tensor:
    """A standard normal tensor like ``like`` from a private generator (training's stream untouched)."""
    if like.device.type not in ("cpu", "cuda"):              # meta: no values, no random stream
        return torch.empty_like(like)
    gen = torch.Generator(device=like.device).manual_seed(0)
    return torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)


def replica(module: nn.RNNBase) -> nn.RNNBase:
    """The module's structure on ``meta`` (no memory), without dropout, for ``functional_call``."""
    kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  bidirectional=module.bidirectional)
    if module.mode == "LSTM":
        kwargs["proj_size"] = module.proj_size
    if module.mode.startswith("RNN"):
        kwargs["nonlinearity"] = "tanh" if module.mode == "RNN_TANH" else "relu"
    return type(module)(module.input_size, module.hidden_size, device="meta", **kwargs)


def grad_energy_through_time(module: nn.RNNBase, x: torch.Tensor, hx=None) -> torch.Tensor:
    """``e_k`` for ``k = 0 .. T-1`` (steps back from the last output, see the module docstring), ``(T,)``.

    The forward direction's last output is projected (for a bidirectional module its reverse
    direction ends at the first step, not the last).
    """
    from torch.func import functional_call

    structure = replica(module)
    params = {n: p.detach() for n, p in module.named_parameters()}
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        hx = detached_state(hx)
        out, _ = functional_call(structure, params, (xr, hx) if hx is not None else (xr,))
        time_dim = 0 if x.dim() == 2 or not module.batch_first else 1
        last = out.select(time_dim, out.shape[time_dim] - 1)
        last = last[..., : last.shape[-1] // (2 if module.bidirectional else 1)]
        u = probe(last)
        (grad,) = torch.autograd.grad((last * u).sum(), xr)
    grad = grad.detach().float()
    energy = grad.pow(2).movedim(time_dim, 0).reshape(grad.shape[time_dim], -1).mean(1)
    return energy.flip(0)
