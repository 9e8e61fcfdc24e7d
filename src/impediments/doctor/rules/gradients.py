"""Rules on gradients: across depth (backward signal per layer) and overall (parameter norms, updates)."""
from __future__ import annotations

from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, rule

_VANISH_EXPLAIN = ("The back-propagated signal shrinks layer by layer, so the first layers receive gradients "
                   "orders of magnitude smaller than the last and barely learn with a single learning rate.")
_VANISH_FIX = ("Use the init that preserves variance for the activation (impediments.init.initialize(model, "
               "\"glorot_normal\") for tanh, \"he_normal\" for ReLU), avoid saturating activations in deep "
               "stacks, or add normalization or residual connections; see: impediments reproduce glorot_he")
_EXPLODE_EXPLAIN = ("Gradients grow layer by layer or are so large that one step moves the weights by as much as "
                    "their own size, so training oscillates or diverges.")
_EXPLODE_FIX = ("Lower the learning rate, use the variance-preserving init (impediments.init.initialize(model, "
                "\"he_normal\")), impediments.init.fixup(model) for unnormalized residual nets, or clip gradients "
                "(torch.nn.utils.clip_grad_norm_); see: impediments reproduce residual_limits")


def _output_depth(layers) -> int | None:
    depths = [l.depth for l in layers.values() if getattr(l, "depth", None) is not None]
    return max(depths) if depths else None


@rule("vanishing_gradients", "exploding_gradients", requires=("layers",))
def gradient_variance_with_depth(stats, th):
    """Back-propagated gradient energy (d loss / d layer output) along the hidden layers.

    Per-element gradient variance is not comparable between layers of different sizes; the
    energy per example, :math:`E_l = n_l \\operatorname{Var}(\\partial L / \\partial z_l)` with
    :math:`n_l` values per example, is what a fan-in variance-preserving init keeps constant
    backward (He et al. 2015). ``output.count`` is proportional to :math:`n_l` for layers
    called once per forward. The output layer (largest depth) is left out: its gradient is
    the loss's own (softmax minus one-hot), not a back-propagated signal.
    """
    last = _output_depth(stats.layers)
    chain = [(n, float(l.grad_var) * max(getattr(l.output, "count", 1), 1)) for n, l in by_depth(stats.layers)
             if finite(getattr(l, "grad_var", None)) and l.depth != last]
    if len(chain) < th.depth_min_layers or all(v == 0 for _, v in chain):
        return []
    ratio = geometric_ratio([max(v, 1e-45) for _, v in chain])  # last / first (output side / input side)
    energy = dict(chain)
    evidence = {"output_over_input_grad_energy": ratio, "threshold": th.gradient_var_ratio,
                "first_layer": chain[0][0], "last_hidden_layer": chain[-1][0],
                "grad_variance_by_layer": {n: stats.layers[n].grad_var for n in energy}}
    where = [n for n, _ in chain]
    if ratio > th.gradient_var_ratio:
        return [finding("vanishing_gradients", "warning", where, evidence, _VANISH_EXPLAIN, _VANISH_FIX)]
    if ratio < 1 / th.gradient_var_ratio:
        return [finding("exploding_gradients", "warning", where, evidence, _EXPLODE_EXPLAIN, _EXPLODE_FIX)]
    return []


def _weights(stats):
    return [(n, p) for n, p in stats.params.items() if (getattr(p, "samples", 0) or 0) > 0]


@rule("vanishing_gradients", requires=("params",))
def gradients_vanished_overall(stats, th):
    """Every parameter gradient (essentially) zero: nothing is learning."""
    params = [(n, p.grad_norm_max) for n, p in _weights(stats) if finite(getattr(p, "grad_norm_max", None))]
    if not params:
        return []
    largest = max(v for _, v in params)
    if largest >= th.vanishing_grad_norm:
        return []
    return [finding("vanishing_gradients", "error", [n for n, _ in params],
                    {"max_grad_norm": largest, "threshold": th.vanishing_grad_norm, "parameters": len(params)},
                    "Every parameter's gradient is essentially zero, so no step changes the network: the signal "
                    "is blocked (dead or saturated units, or zero weights downstream).", _VANISH_FIX)]


@rule("exploding_gradients", requires=("params",))
def gradients_exploded_overall(stats, th):
    """Updates as large as the weights, or gradient norms that overflow any learning rate."""
    big_update, big_grad = {}, {}
    for name, p in _weights(stats):
        ratio, wnorm = getattr(p, "update_to_weight", None), getattr(p, "weight_norm", None)
        if (name.endswith("weight") and finite(ratio) and finite(wnorm) and wnorm > 1e-6
                and ratio > th.exploding_update_ratio):
            big_update[name] = float(ratio)
        gmax = getattr(p, "grad_norm_max", None)
        if finite(gmax) and gmax > th.exploding_grad_norm:
            big_grad[name] = float(gmax)
    for w in getattr(stats, "windows", None) or []:     # per-window norms survive a later NaN in the means
        for name, g in (getattr(w, "grad_norm", None) or {}).items():
            if finite(g) and g > th.exploding_grad_norm:
                big_grad[name] = max(big_grad.get(name, 0.0), float(g))
    if not big_update and not big_grad:
        return []
    evidence = {"update_to_weight": big_update, "update_threshold": th.exploding_update_ratio,
                "grad_norm_max": big_grad, "grad_norm_threshold": th.exploding_grad_norm}
    if big_update:
        evidence["max_update_to_weight"] = max(big_update.values())
    if big_grad:
        evidence["max_grad_norm"] = max(big_grad.values())
    return [finding("exploding_gradients", "error", sorted({*big_update, *big_grad}), evidence,
                    _EXPLODE_EXPLAIN, _EXPLODE_FIX)]
