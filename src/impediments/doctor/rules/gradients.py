"""Rules on gradients: across depth (backward signal per hidden layer) and overall (parameter norms, updates).

Across depth, only signals that one learning rate has to serve are compared:

* **Hidden layers only.** The output layer's gradient is the loss's own (softmax minus one-hot), and
  a head that runs after the positions were reduced (global pooling, a BERT pooler on the [CLS]
  token) sees one value per example where the body sees ``H*W`` or ``T``: neither is "the last hidden
  layer" of the body.
* **Not the weights that feed a BatchNorm.** Their output is normalized, so the loss is invariant to
  their scale: :math:`\\partial L / \\partial z = (\\gamma / \\sigma_z)\\, P\\, \\partial L / \\partial y`
  scales as :math:`1/\\sigma_z`, and the gradient of such a weight is orthogonal to it with norm
  :math:`\\propto 1/\\|w\\|`. Each step grows :math:`\\|w\\|` where the gradient is large, so the relative
  step settles by itself (the angular update tends to :math:`\\sqrt{2\\eta\\lambda/(1+\\mu)}`, Wan et al.
  2021; van Laarhoven 2017; Hoffer et al. 2018). That BN nets' raw backward signal grows toward the
  input at init (Yang et al. 2019, a mean-field theory of BN) is therefore not an impediment.
* **With an adaptive optimizer** (Adam, RMSprop, ...), each parameter's step is normalized by its own
  gradient scale: a gradient spread across layers hurts only if the update-to-weight ratios
  :math:`\\|\\Delta w\\| / \\|w\\|` are spread as well, so those must agree.
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, not_checked, rule

#: optimizers that divide each parameter's step by a running scale of its own gradient
ADAPTIVE_OPTIMIZERS = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
                                 "SparseAdam", "Adafactor", "LAMB", "Lamb", "Lion"})


def batchnorm_fed(stats) -> set[str]:
    """Layers whose output goes straight into a BatchNorm (scale-invariant weights)."""
    return {bn.feeding_layer for bn in stats.batchnorm.values() if bn.feeding_layer}


def head_layers(layers) -> set[str]:
    """The output layer plus any head after the positions were reduced (global pool, [CLS] pooler).

    When the body has several positions per example (conv ``H*W``, sequence ``T``), the trailing layers
    (by depth) with one position per example run after that reduction. An MLP has one position
    everywhere, so only its output layer is the head.
    """
    ordered = by_depth(layers)
    if not ordered:
        return set()
    head = {ordered[-1][0]}
    if any(l.positions > 1 for _, l in ordered):
        for name, l in reversed(ordered):
            if l.positions > 1:
                break
            head.add(name)
    return head


def _adaptive(stats) -> bool:
    return bool(stats.optimizer) and stats.optimizer.get("type") in ADAPTIVE_OPTIMIZERS


def _relative_steps(stats, names) -> list[tuple[str, float]]:
    """Per layer, the measured update-to-weight ratio of its weight (the steps the optimizer took)."""
    out = []
    for n in names:
        p = stats.params.get(f"{n}.weight")
        if p is not None and p.samples > 0 and finite(p.update_to_weight) and p.update_to_weight > 0:
            out.append((n, float(p.update_to_weight)))
    return out


@rule("vanishing_gradients", "exploding_gradients", requires=("layers",))
def gradient_variance_with_depth(stats, th):
    """Back-propagated gradient energy (d loss / d layer output) along the hidden layers of the body.

    The energy per example, :math:`E_l = n_l \\operatorname{Var}(\\partial L / \\partial z_l)` with
    :math:`n_l` values per example, is what a fan-in variance-preserving init keeps constant backward
    (He et al. 2015); ``output.count`` is proportional to :math:`n_l` for layers called once per
    forward. Compared along a least-squares geometric trend (last / first) against
    ``gradient_var_ratio``; with an adaptive optimizer the update-to-weight ratios must be spread
    the same way, by at least its square root (norms, not energies).
    """
    skip_head, skip_bn = head_layers(stats.layers), batchnorm_fed(stats)
    chain = [(n, float(l.grad_var) * max(l.output.count, 1)) for n, l in by_depth(stats.layers)
             if finite(l.grad_var) and n not in skip_head and n not in skip_bn]
    if len(chain) < th.depth_min_layers or all(v == 0 for _, v in chain):
        if skip_bn and len(chain) < th.depth_min_layers:
            return [not_checked("vanishing_gradients", sorted(skip_bn)[:3],
                                f"{len(skip_bn)} layers feed BatchNorm (scale-invariant: their gradient scale "
                                f"settles by itself); {len(chain)} other hidden layers, fewer than "
                                f"{th.depth_min_layers} needed for a trend")]
        return []
    ratio = geometric_ratio([max(v, 1e-45) for _, v in chain])  # last / first (output side / input side)
    code = "vanishing_gradients" if ratio > th.gradient_var_ratio else (
        "exploding_gradients" if ratio < 1 / th.gradient_var_ratio else None)
    if code is None:
        return []
    energy = dict(chain)
    evidence = {"output_over_input_grad_energy": ratio, "threshold": th.gradient_var_ratio,
                "first_layer": chain[0][0], "last_hidden_layer": chain[-1][0],
                "grad_variance_by_layer": {n: stats.layers[n].grad_var for n in energy},
                "left_out": {"head": sorted(skip_head), "feeding_batchnorm": len(skip_bn)}}
    if _adaptive(stats):
        steps = _relative_steps(stats, energy)
        if len(steps) >= th.depth_min_layers:
            step_ratio = geometric_ratio([v for _, v in steps])
            evidence["update_to_weight_last_over_first"] = step_ratio
            bound = math.sqrt(th.gradient_var_ratio)
            if not (step_ratio > bound if code == "vanishing_gradients" else step_ratio < 1 / bound):
                return []       # the adaptive optimizer's per-parameter scaling already evens the steps out
    seen = {"layers": len(chain), "sampled_steps": stats.sampled_steps, "steps": stats.steps}
    confidence = (f"a geometric trend over {len(chain)} hidden layers, {abs(math.log10(ratio)):.1f} decades "
                  f"first to last (the threshold is {math.log10(th.gradient_var_ratio):.0f})")
    return [finding(code, "warning", list(energy), evidence, seen=seen, confidence=confidence)]


def _weights(stats):
    return [(n, p) for n, p in stats.params.items() if p.samples > 0]


@rule("vanishing_gradients", requires=("params",))
def gradients_vanished_overall(stats, th):
    """Every parameter gradient (essentially) zero: nothing is learning."""
    params = [(n, p.grad_norm_max) for n, p in _weights(stats) if finite(p.grad_norm_max)]
    if not params:
        return []
    largest = max(v for _, v in params)
    if largest >= th.vanishing_grad_norm:
        return []
    return [finding("vanishing_gradients", "error", [n for n, _ in params],
                    {"max_grad_norm": largest, "threshold": th.vanishing_grad_norm, "parameters": len(params)},
                    "Every parameter's gradient is essentially zero, so no step changes the network: the signal "
                    "is blocked (dead or saturated units, or zero weights downstream).",
                    seen={"parameters": len(params), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
                    confidence=f"the largest gradient norm of any parameter at any sampled step was {largest:.2g}")]


@rule("exploding_gradients", requires=("params",))
def gradients_exploded_overall(stats, th):
    """Updates as large as the weights, or gradient norms that overflow any learning rate."""
    big_update, big_grad = {}, {}
    for name, p in _weights(stats):
        if (name.endswith("weight") and finite(p.update_to_weight) and finite(p.weight_norm) and p.weight_norm > 1e-6
                and p.update_to_weight > th.exploding_update_ratio):
            big_update[name] = float(p.update_to_weight)
        if finite(p.grad_norm_max) and p.grad_norm_max > th.exploding_grad_norm:
            big_grad[name] = float(p.grad_norm_max)
    for w in stats.windows:     # per-window norms survive a later NaN in the means
        for name, g in w.grad_norm.items():
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
    what = (f"mean update-to-weight ratio up to {max(big_update.values()):.2g} over the sampled steps"
            if big_update else f"gradient norms up to {max(big_grad.values()):.2g}")
    return [finding("exploding_gradients", "error", sorted({*big_update, *big_grad}), evidence,
                    seen={"parameters": len(stats.params), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
                    confidence=f"{what}; measured, not extrapolated")]
