"""Rules on the model's inputs: uncentered features (the zig-zag) and unequal scales.

Scales are compared among the features that carry signal. A *near-constant* feature (an image's
border pixel, background on almost every example) is left out: it sits at one level and departs
from it on a small fraction :math:`f` of the examples, and a two-level feature has
:math:`\\operatorname{Var} = f(1-f)\\,\\mathrm{range}^2`, so :math:`\\operatorname{Var}/\\mathrm{range}^2`
estimates :math:`f`. Its tiny variance makes no direction of the loss surface that matters hard to
learn, and rescaling it to unit variance (the usual remedy) only amplifies a handful of examples.
"""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule


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


@rule("uncentered_inputs", "unequal_input_scales", requires=("inputs",))
def input_statistics(stats, th):
    """Mean energy and sign sharing of the inputs; spread of per-feature variances among signal features."""
    inputs = stats.inputs
    if inputs.count < th.input_min_count:
        return []
    signal, near, constant = split_features(inputs, th.near_constant_share)
    varying = sorted(signal + near)
    if not varying:
        return []
    seen = {"examples": inputs.count, "features": len(inputs.var), "sampled_steps": stats.sampled_steps}
    out = []
    mean = [inputs.mean[i] for i in varying]
    mean_energy = sum(m * m for m in mean)
    energy = mean_energy / (mean_energy + sum(inputs.var[i] for i in varying))
    positive = sum(m * m for m in mean if m > 0)
    share = max(positive, mean_energy - positive) / mean_energy if mean_energy > 0 else 0.0
    if energy >= th.uncentered_energy and share >= th.uncentered_sign_share:
        out.append(finding(
            "uncentered_inputs", "warning", ["input"],
            {"mean_energy_fraction": energy, "threshold": th.uncentered_energy, "sign_share": share,
             "sign": "positive" if positive >= mean_energy - positive else "negative",
             "features": len(mean), "examples": inputs.count},
            seen=seen, confidence=f"means and variances of {len(mean)} features over {inputs.count} examples"))
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
             "near_constant_features_left_out": len(near), "constant_features": constant,
             "examples": inputs.count},
            seen=seen, confidence=f"variances of {len(var)} signal-carrying features over {inputs.count} examples; "
                                  f"{len(near)} near-constant ones left out"))
    return out
