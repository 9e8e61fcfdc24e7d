"""One variance-scaling core and the weight-level initializers built on it.

Every initializer here fills a *weight tensor* (at least 2-D: ``(out, in, *kernel)``)
in place and returns it. The variance-scaling core draws

.. math:: \\operatorname{Var}(W) = \\frac{\\text{scale}}{n}, \\qquad
          n = \\text{fan\\_in},\\ \\text{fan\\_out}\\ \\text{or}\\ \\tfrac12(\\text{fan\\_in} + \\text{fan\\_out}),

so that ``Var(out) = n Var(W) Var(in)`` stays put through depth (Glorot & Bengio 2010
for ``fan_avg``, scale 1; He et al. 2015 for ``fan_in``, scale 2 with ReLU's factor ½;
LeCun et al. 1998 for ``fan_in``, scale 1). Distributions: ``normal``; ``truncated_normal``
cut at ±2σ with σ corrected by 1/0.8796 so the variance is still ``scale/n`` (Keras
``VarianceScaling``); ``uniform`` on ``[-√(3 scale/n), √(3 scale/n)]``.

The ``*_normal`` presets use the plain normal, as ``torch.nn.init.xavier_normal_`` and
``kaiming_normal_`` do (Keras uses the truncated one; pass ``distribution=`` to the core
for that). Sampling happens on the CPU with ``generator`` (reproducible across devices)
and is copied into the tensor.
"""
from __future__ import annotations

import math

import torch

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
TRUNCATED_STD_CORRECTION = 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``: ``in·k`` and ``out·k``, ``k = ∏ kernel``.

    Raises:
        TypeError: if ``tensor`` is not a tensor.
        ValueError: for fewer than 2 dims (a bias or norm parameter has no fan).
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a weight tensor, got {type(tensor).__name__}")
    if tensor.dim() < 2:
        raise ValueError(f"cannot compute fans of a {tensor.dim()}-D parameter of shape {tuple(tensor.shape)}: "
                         "initializers need the weight of a Linear or Conv layer (out, in, *kernel), "
                         "not a bias or normalization parameter")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def fan(tensor: torch.Tensor, mode: str) -> float:
    """The fan ``n`` that ``mode`` divides the scale by."""
    fan_in, fan_out = fans(tensor)
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")


def check_nonnegative(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def _fill(tensor: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        tensor.copy_(sample)
    return tensor


def _cpu_empty(tensor: torch.Tensor) -> torch.Tensor:
    dtype = tensor.dtype if tensor.dtype.is_floating_point else torch.float32
    return torch.empty(tensor.shape, dtype=torch.float64 if dtype == torch.float64 else torch.float32)


def variance_scaling(
    tensor: torch.Tensor, *, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with zero-mean values of variance ``scale / n`` (``n`` chosen by ``mode``).

    Args:
        tensor: weight ``(out, in, *kernel)``, filled in place.
        scale: variance multiplier (1 Glorot/LeCun, 2 He); must be > 0.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"normal"``, ``"truncated_normal"`` (±2σ) or ``"uniform"``.
        generator: CPU ``torch.Generator`` for reproducible draws (global RNG if None).

    Returns:
        ``tensor``.

    Raises:
        ValueError: unknown mode/distribution, scale <= 0, or a tensor with < 2 dims.

    References:
        Glorot & Bengio 2010; He et al. 2015; Keras ``VarianceScaling``.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; valid distributions: {', '.join(DISTRIBUTIONS)}")
    if not check_nonnegative(scale, "scale") > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    std = math.sqrt(scale / fan(tensor, mode))
    out = _cpu_empty(tensor)
    if distribution == "normal":
        out.normal_(0.0, std, generator=generator)
    elif distribution == "truncated_normal":
        s = std / TRUNCATED_STD_CORRECTION
        torch.nn.init.trunc_normal_(out, 0.0, s, -2 * s, 2 * s, generator=generator)
    else:
        limit = math.sqrt(3.0) * std
        out.uniform_(-limit, limit, generator=generator)
    return _fill(tensor, out)


# -- presets: thin wrappers on the core -------------------------------------------------------------------------
def glorot_normal(tensor, *, generator=None):
    """``N(0, 2/(fan_in + fan_out))`` (Glorot & Bengio 2010); = ``xavier_normal_``."""
    return variance_scaling(tensor, scale=1.0, mode="fan_avg", distribution="normal", generator=generator)


def glorot_uniform(tensor, *, generator=None):
    """``U(±√(6/(fan_in + fan_out)))`` (Glorot & Bengio 2010); = ``xavier_uniform_``."""
    return variance_scaling(tensor, scale=1.0, mode="fan_avg", distribution="uniform", generator=generator)


def he_normal(tensor, *, generator=None):
    """``N(0, 2/fan_in)`` (He et al. 2015); = ``kaiming_normal_(nonlinearity="relu")``."""
    return variance_scaling(tensor, scale=2.0, mode="fan_in", distribution="normal", generator=generator)


def he_uniform(tensor, *, generator=None):
    """``U(±√(6/fan_in))`` (He et al. 2015); = ``kaiming_uniform_(nonlinearity="relu")``."""
    return variance_scaling(tensor, scale=2.0, mode="fan_in", distribution="uniform", generator=generator)


def lecun_normal(tensor, *, generator=None):
    """``N(0, 1/fan_in)`` (LeCun et al. 1998); = ``kaiming_normal_(nonlinearity="linear")``."""
    return variance_scaling(tensor, scale=1.0, mode="fan_in", distribution="normal", generator=generator)


def lecun_uniform(tensor, *, generator=None):
    """``U(±√(3/fan_in))`` (LeCun et al. 1998); = ``kaiming_uniform_(nonlinearity="linear")``."""
    return variance_scaling(tensor, scale=1.0, mode="fan_in", distribution="uniform", generator=generator)


def zeros(tensor, *, generator=None):
    """All zeros: every unit identical and (with ReLU/tanh) silent — the symmetry demo."""
    fans(tensor)
    return _fill(tensor, torch.zeros(tensor.shape))


def constant(tensor, value: float = 0.0, *, generator=None):
    """Every weight equal to ``value`` (units identical, never break symmetry)."""
    fans(tensor)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"constant value must be a finite number, got {value!r}")
    return _fill(tensor, torch.full(tensor.shape, float(value)))


def normal(tensor, std: float = 0.01, *, generator=None):
    """``N(0, std²)``; ``std`` must be >= 0."""
    std = check_nonnegative(std, "std")
    fans(tensor)
    return _fill(tensor, _cpu_empty(tensor).normal_(0.0, std, generator=generator) if std else torch.zeros(
        tensor.shape))


def uniform(tensor, limit: float = 0.05, *, generator=None):
    """``U(-limit, limit)``; ``limit`` must be >= 0."""
    limit = check_nonnegative(limit, "limit")
    fans(tensor)
    return _fill(tensor, _cpu_empty(tensor).uniform_(-limit, limit, generator=generator))


def identical(tensor, *, std: float | None = None, constant_rows: bool = False, generator=None):
    """Every unit (row / output channel) gets the *same* random vector ``v ~ N(0, std²)``.

    ``std`` defaults to LeCun's ``1/√fan_in``. With ``constant_rows`` the shared
    vector is itself constant, ``v = c·1`` with ``c ~ N(0, std²)/√fan_in``: needed
    for layers whose *inputs* are identical units, because the gradient reaching
    input unit ``j`` is ``v_j Σ_k δ_k``, which differs across ``j`` unless ``v`` is
    constant (see :func:`impediments.init.initialize`).
    """
    fan_in, _ = fans(tensor)
    std = 1.0 / math.sqrt(fan_in) if std is None else check_nonnegative(std, "std")
    row_shape = (1, *tensor.shape[1:])
    if constant_rows:
        c = torch.randn((), generator=generator) * std / math.sqrt(fan_in)
        row = torch.full(row_shape, float(c))
    else:
        row = torch.randn(row_shape, generator=generator) * std
    return _fill(tensor, row.expand(tensor.shape))


def orthogonal(tensor, *, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix on the flattened ``(out, in·k)`` weight (Saxe et al. 2014), times ``gain``."""
    fans(tensor)
    out = _cpu_empty(tensor)
    torch.nn.init.orthogonal_(out, gain=check_nonnegative(gain, "gain"), generator=generator)
    return _fill(tensor, out)
