"""Rules on activation statistics: dead units, saturation, linear regime, variance with depth.

Each emits at most one finding per (code, severity), listing every layer involved
in ``where`` and the per-layer numbers in ``evidence``.
"""
from __future__ import annotations

from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, rule

# Kinds whose "dead" means exactly-zero output (ReLU family) or flat tail (smooth ReLU-likes).
DEAD_KINDS = frozenset({"relu", "relu6", "gelu", "silu", "swish", "elu", "selu", "celu", "softplus", "mish"})
# Kinds with two flat tails (sigmoid-like): the zero-derivative region is saturation.
SATURATING_KINDS = frozenset({"sigmoid", "tanh", "hardtanh", "hardsigmoid", "softsign", "logsigmoid",
                              "hardswish"})
# Piecewise-linear kinds: "linear regime" = no input in the flat part (ReLU acts as the identity).
PIECEWISE_KINDS = frozenset({"relu", "relu6"})
# Smooth kinds whose linear_fraction (from activations.classify) is meaningful.
SMOOTH_KINDS = frozenset({"sigmoid", "tanh", "softsign", "hardtanh", "hardsigmoid", "gelu", "silu", "swish",
                          "elu", "selu", "celu", "softplus", "mish"})


def _kind(a) -> str:
    return str(getattr(a, "kind", "") or "").lower()


def _grade(value: float, warning: float, error: float, info_above: float | None = None) -> str | None:
    if value >= error:
        return "error"
    if value >= warning:
        return "warning"
    if info_above is not None and value > info_above:
        return "info"
    return None


def _group(code, graded: dict, explanation, remedy, summary) -> list:
    """One finding per severity from ``{layer: (severity, evidence)}``; ``summary(evidence_by_layer)``."""
    out = []
    for severity in ("error", "warning", "info"):
        layers = {k: ev for k, (sev, ev) in graded.items() if sev == severity}
        if layers:
            out.append(finding(code, severity, list(layers), {**summary(layers), "layers": layers},
                               explanation, remedy))
    return out


def _last_window_dead(stats, name):
    windows = getattr(stats, "windows", None) or []
    for w in reversed(windows):
        value = (getattr(w, "dead_fraction", None) or {}).get(name)
        if finite(value):
            return float(value), w
    return None, None


@rule("dead_units", requires=("activations",))
def dead_units(stats, th):
    """ReLU-like units never active on any input seen (or in the last window of training).

    Units active on at most ``nearly_dead_fraction`` of their values (a conv channel that fires
    at 2 of 16384 positions) count as dead too; the evidence keeps the two counts apart.
    """
    graded = {}
    for name, a in by_depth(stats.activations):
        units = getattr(a, "units", 0) or 0
        if _kind(a) not in DEAD_KINDS or units < 1 or (getattr(a, "unit_total", 0) or 0) < th.dead_min_values:
            continue
        dead = list(getattr(a, "dead_units", None) or [])
        counts = getattr(a, "unit_active_counts", None) or []
        nearly = [i for i, c in enumerate(counts) if 0 < c <= th.nearly_dead_fraction * a.unit_total]
        frac = (len(dead) + len(nearly)) / units
        ev = {"dead_fraction": frac, "dead_units": len(dead), "nearly_dead_units": len(nearly), "units": units,
              "values_per_unit": a.unit_total}
        late, window = _last_window_dead(stats, name)
        if late is not None and late > frac and late >= th.dead_warning:
            ev.update(last_window_dead_fraction=late, last_window_steps=[window.start_step, window.end_step])
            frac = late
        sev = _grade(frac, th.dead_warning, th.dead_error, info_above=0.0)
        if sev:
            graded[name] = (sev, ev)
    return _group(
        "dead_units", graded,
        "These units output zero for every input seen, so their incoming weights get zero gradient and can "
        "never recover; the layer has lost that much capacity (a large negative bias, a too-high learning rate "
        "or a bad init pushes pre-activations below zero everywhere).",
        "Re-initialize with zero biases and He init matched to ReLU, e.g. "
        "impediments.init.initialize(model, \"he_normal\", bias=0.0) (or impediments.init.lsuv), lower the "
        "learning rate, or use leaky_relu/gelu; see: impediments reproduce dead_bias",
        lambda layers: {"max_dead_fraction": max(ev.get("last_window_dead_fraction", ev["dead_fraction"])
                                                 for ev in layers.values()),
                        "threshold_warning": th.dead_warning, "threshold_error": th.dead_error})


@rule("saturated_units", requires=("activations",))
def saturated_units(stats, th):
    """Sigmoid/tanh-like layers with most inputs in the zero-derivative region."""
    graded = {}
    for name, a in by_depth(stats.activations):
        frac = getattr(a, "saturated_fraction", None)
        if _kind(a) not in SATURATING_KINDS or not finite(frac):
            continue
        sev = _grade(frac, th.saturated_warning, th.saturated_error)
        if sev:
            inp = getattr(a, "input", None)
            graded[name] = (sev, {"saturated_fraction": frac, "kind": _kind(a),
                                  "always_saturated_units": len(getattr(a, "dead_units", None) or []),
                                  "units": getattr(a, "units", None),
                                  "pre_activation_std": (getattr(inp, "var", 0.0) or 0.0) ** 0.5})
    return _group(
        "saturated_units", graded,
        "Most pre-activations sit in the flat tails (|x| beyond the saturation bound), where the derivative is "
        "nearly zero, so almost no gradient flows through these units and the layers below stop learning.",
        "Shrink the pre-activations: Glorot init for tanh/sigmoid "
        "(impediments.init.initialize(model, \"glorot_normal\")), standardized inputs, BatchNorm before the "
        "nonlinearity (impediments.norm.BatchNorm), or a non-saturating activation; "
        "see: impediments reproduce activations",
        lambda layers: {"max_saturated_fraction": max(ev["saturated_fraction"] for ev in layers.values()),
                        "threshold_warning": th.saturated_warning, "threshold_error": th.saturated_error,
                        "saturation_bound": th.saturation_bound})


def _linear_fraction(a) -> float | None:
    kind = _kind(a)
    if kind in PIECEWISE_KINDS:
        sat = getattr(a, "saturated_fraction", None)
        return 1.0 - sat if finite(sat) else None
    if kind in SMOOTH_KINDS:
        lin = getattr(a, "linear_fraction", None)
        return float(lin) if finite(lin) else None
    return None


@rule("linear_regime", requires=("activations",))
def linear_regime(stats, th):
    """Nonlinearities whose inputs nearly all fall in the near-linear region."""
    graded = {}
    for name, a in by_depth(stats.activations):
        frac = _linear_fraction(a)
        if frac is not None and frac >= th.linear_warning:
            inp = getattr(a, "input", None)
            graded[name] = ("warning", {"linear_fraction": frac, "kind": _kind(a),
                                        "pre_activation_mean": getattr(inp, "mean", None),
                                        "pre_activation_std": (getattr(inp, "var", 0.0) or 0.0) ** 0.5})
    return _group(
        "linear_regime", graded,
        "Nearly every input to these nonlinearities falls where the function equals its tangent line, so the "
        "layers compose to an (almost) linear map and extra depth adds no expressive power.",
        "Increase the init scale to the variance-preserving one (impediments.init.initialize(model, "
        "\"glorot_normal\") for tanh/sigmoid, \"he_normal\" for ReLU), or remove the bias shift that keeps "
        "ReLU inputs positive; see: impediments reproduce depth_distributions",
        lambda layers: {"min_linear_fraction": min(ev["linear_fraction"] for ev in layers.values()),
                        "threshold": th.linear_warning})


@rule("vanishing_activations", "exploding_activations", requires=("activations",))
def activation_variance_with_depth(stats, th):
    """Pre-activation variance shrinking or growing geometrically along depth."""
    chain = [(name, getattr(getattr(a, "input", None), "var", None)) for name, a in by_depth(stats.activations)]
    chain = [(n, float(v)) for n, v in chain if finite(v)]
    if len(chain) < th.depth_min_layers:
        return []
    variances = [max(v, 1e-45) for _, v in chain]
    ratio = geometric_ratio(variances)
    evidence = {"last_over_first_variance": ratio, "threshold": th.activation_var_ratio, "layers": len(chain),
                "first_variance": chain[0][1], "last_variance": chain[-1][1],
                "variance_by_layer": {n: v for n, v in chain}}
    where = [n for n, _ in chain]
    if ratio < 1 / th.activation_var_ratio:
        return [finding(
            "vanishing_activations", "warning", where, evidence,
            "The variance of pre-activations shrinks by a constant factor per layer, so deep layers see nearly "
            "constant inputs and back-propagated gradients shrink the same way (n Var(W) < 1 per layer).",
            "Use the variance-preserving init for the activation, n Var(W) = 1 (Glorot) or 2 (He): "
            "impediments.init.initialize(model, \"he_normal\"), or impediments.init.lsuv(model, batch), or add "
            "normalization (impediments.norm.BatchNorm); see: impediments reproduce depth_distributions")]
    if ratio > th.activation_var_ratio:
        return [finding(
            "exploding_activations", "warning", where, evidence,
            "The variance of pre-activations grows by a constant factor per layer (n Var(W) > 1, or residual "
            "branches adding up), driving deep units into saturation or overflow.",
            "Use the variance-preserving init (impediments.init.initialize(model, \"he_normal\") / "
            "\"glorot_normal\"); for residual nets without normalization use impediments.init.fixup(model); or "
            "add normalization (impediments.norm.BatchNorm); see: impediments reproduce depth_distributions")]
    return []
