"""Rules on the model's inputs: uncentered features (the zig-zag) and unequal scales.

When the first layer is a convolution, the features are the input channels (pooled over positions):
its weights are shared across positions, so per-pixel scale differences do not condition them.

Scales are compared among the features that carry signal. A *near-constant* feature (an image's
border pixel, background on almost every example) is left out: it sits at one level and departs
from it on a small fraction :math:`f` of the examples, and a two-level feature has
:math:`\\operatorname{Var} = f(1-f)\\,\\mathrm{range}^2`, so :math:`\\operatorname{Var}/\\mathrm{range}^2`
estimates :math:`f`. Its tiny variance makes no direction of the loss surface that matters hard to
learn, and rescaling it to unit variance (the usual remedy) only amplifies a handful of examples.
"""
from __future__ import annotations

from dataclasses import dataclass

from impediments.doctor.rules.base import by_depth, finding, finite, loss_drop, rule


@dataclass
class _Channels:
    """Per-channel moments pooled over positions, with no per-feature range (channels are not near-constant)."""

    count: int
    mean: list
    var: list
    min: list
    max: list


def per_channel(inputs):
    """Input moments pooled over the positions of each channel: what a convolution's shared weights see.

    A kernel weight of channel :math:`c` multiplies every position of that channel, so the curvature
    along it is :math:`E[x_c^2]` pooled over positions (LeCun et al. 1998, applied to weight sharing):
    :math:`\\mu_c = \\bar{\\mu_p}`, :math:`\\sigma^2_c = \\overline{\\sigma^2_p + \\mu_p^2} - \\mu_c^2`.
    Per-pixel differences inside a channel (a dark border) do not stretch the loss surface.
    """
    channels = inputs.shape[0]
    per = len(inputs.var) // channels
    mean, var = [], []
    for c in range(channels):
        m = inputs.mean[c * per:(c + 1) * per]
        v = inputs.var[c * per:(c + 1) * per]
        mu = sum(m) / per
        mean.append(mu)
        var.append(max(sum(vi + mi * mi for vi, mi in zip(v, m)) / per - mu * mu, 0.0))
    return _Channels(inputs.count, mean, var, [], [])


def _first_layer_is_conv(stats) -> bool:
    layers = by_depth(stats.layers)
    return bool(layers) and layers[0][1].kind.startswith("Conv")


def _features_seen(stats):
    """``(moments, unit)``: per channel when a convolution reads the images, else per flattened feature."""
    inputs = stats.inputs
    shape = inputs.shape
    size = 1
    for d in shape:
        size *= d
    if len(shape) >= 2 and size == len(inputs.var) and _first_layer_is_conv(stats):
        return per_channel(inputs), "channel"
    return inputs, "feature"


def split_features(inputs, near_constant_share: float):
    """``(signal, near_constant, constant)``: indices of varying features, of near-constant ones, and the
    count of exactly constant ones (variance 0 or below 1e-12 of the largest)."""
    var = list(inputs.var)
    top = max(var, default=0.0)
    varying = [i for i, v in enumerate(var) if v > 0 and v > 1e-12 * top]
    near = []
    if len(inputs.min) == len(var) and len(inputs.max) == len(var):
        for i in varying:
            span = inputs.max[i] - inputs.min[i]
            if span > 0 and var[i] / (span * span) < near_constant_share:
                near.append(i)
    skip = set(near)
    return [i for i in varying if i not in skip], near, len(var) - len(varying)


def _uncentered_cost(stats, th) -> tuple[str, dict]:
    """``(severity, evidence)`` of uncentered inputs by the cost measured in this run.

    The mechanism (LeCun et al. 1998) is same-sign first-layer updates: the params probe measures it as
    the first weight matrix's gradient row sign agreement (1: every row's entries share a sign). A warning
    needs the mechanism at work (agreement at least ``same_sign_rows``, or not measured) *and* a run it
    slows: the loss shed less than ``trains_loss_drop`` of its start (or no loss trend yet). Otherwise the
    inputs are uncentered but this run trains through it: info, with the numbers.
    """
    measured = [p.sign_agreement for p in stats.params.values() if finite(p.sign_agreement)]
    agreement = measured[0] if measured else None
    drop = loss_drop(stats)
    ev = {"first_layer_gradient_sign_agreement": agreement, "same_sign_threshold": th.same_sign_rows,
          "loss_drop": drop, "trains_loss_drop": th.trains_loss_drop}
    if agreement is not None and agreement < th.same_sign_rows:
        return "info", {**ev, "not_a_warning": "the first layer's gradient rows do not share a sign: the zig-zag "
                                               "is not happening"}
    if drop is not None and drop >= th.trains_loss_drop:
        return "info", {**ev, "not_a_warning": f"the loss shed {drop:.0%} of its start: this run trains through it"}
    return "warning", ev


@rule("uncentered_inputs", "unequal_input_scales", requires=("inputs",))
def input_statistics(stats, th):
    """Mean energy and sign sharing of the inputs; spread of per-feature variances among signal features."""
    if stats.inputs.count < th.input_min_count:
        return []
    raw = stats.inputs
    seen = {"examples": raw.count, "features": len(raw.var), "sampled_steps": stats.sampled_steps}
    out = []
    top = max(raw.var, default=0.0)
    varying = [i for i, v in enumerate(raw.var) if v > 0 and v > 1e-12 * top]
    if not varying:
        return []
    # centering is judged per value (every input of a unit positive: LeCun et al. 1998), scales per feature seen
    mean = [raw.mean[i] for i in varying]
    mean_energy = sum(m * m for m in mean)
    energy = mean_energy / (mean_energy + sum(raw.var[i] for i in varying))
    positive = sum(m * m for m in mean if m > 0)
    share = max(positive, mean_energy - positive) / mean_energy if mean_energy > 0 else 0.0
    if energy >= th.uncentered_energy and share >= th.uncentered_sign_share:
        severity, ev = _uncentered_cost(stats, th)
        out.append(finding(
            "uncentered_inputs", severity, ["input"],
            {"mean_energy_fraction": energy, "threshold": th.uncentered_energy, "sign_share": share,
             "sign": "positive" if positive >= mean_energy - positive else "negative",
             "features": len(mean), "examples": raw.count, **ev},
            seen=seen, confidence=f"means and variances of {len(mean)} features over {raw.count} examples"))
    inputs, unit = _features_seen(stats)
    signal, near, constant = split_features(inputs, th.near_constant_share)
    var = [inputs.var[i] for i in signal]
    if len(var) < 2:
        return out
    ratio = max(var) / min(var)
    if ratio >= th.input_var_ratio:
        lo, hi = min(range(len(var)), key=var.__getitem__), max(range(len(var)), key=var.__getitem__)
        out.append(finding(
            "unequal_input_scales", "warning", ["input"],
            {"max_over_min_variance": ratio, "threshold": th.input_var_ratio, "max_variance": var[hi],
             "min_variance": var[lo], "features": len(var), "min_feature": signal[lo], "max_feature": signal[hi],
             "near_constant_features_left_out": len(near), "constant_features": constant, "per": unit,
             "examples": inputs.count},
            seen=seen, confidence=f"variances of {len(var)} signal-carrying {unit}s over {inputs.count} examples; "
                                  f"{len(near)} near-constant ones left out"))
    return out
