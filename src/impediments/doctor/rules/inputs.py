"""Rules on the model's inputs: uncentered features (the zig-zag) and unequal scales."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule

_FIX = ("Standardize each input feature with training-set statistics: impediments.load_dataset(name, "
        "standardize=True) or impediments.data.Standardizer (x - mean) / std; see: impediments reproduce zigzag")


def _features(inputs):
    """``(means, variances)`` of the varying features (variance above 1e-12 of the largest)."""
    mean, var = list(inputs.mean or []), list(inputs.var or [])
    top = max(var, default=0.0)
    keep = [i for i, v in enumerate(var) if v > 0 and v > 1e-12 * top]
    return [mean[i] for i in keep], [var[i] for i in keep], len(var)


@rule("uncentered_inputs", "unequal_input_scales", requires=("inputs",))
def input_statistics(stats, th):
    """Mean energy and sign sharing of the inputs; spread of per-feature variances."""
    inputs = stats.inputs
    if (getattr(inputs, "count", 0) or 0) < th.input_min_count:
        return []
    mean, var, total = _features(inputs)
    if not var:
        return []
    out = []
    mean_energy = sum(m * m for m in mean)
    energy = mean_energy / (mean_energy + sum(var))
    positive = sum(m * m for m in mean if m > 0)
    share = max(positive, mean_energy - positive) / mean_energy if mean_energy > 0 else 0.0
    if energy >= th.uncentered_energy and share >= th.uncentered_sign_share:
        out.append(finding(
            "uncentered_inputs", "warning", ["input"],
            {"mean_energy_fraction": energy, "threshold": th.uncentered_energy, "sign_share": share,
             "sign": "positive" if positive >= mean_energy - positive else "negative",
             "features": len(mean), "examples": inputs.count},
            "The input features' means share a sign and dominate their spread, so all weight updates of a "
            "first-layer unit share a sign and gradient descent zig-zags toward the optimum (LeCun et al. 1998).",
            _FIX))
    ratio = max(var) / min(var)
    if ratio >= th.input_var_ratio:
        order = sorted(range(len(var)), key=var.__getitem__)
        out.append(finding(
            "unequal_input_scales", "warning", ["input"],
            {"max_over_min_variance": ratio, "threshold": th.input_var_ratio, "max_variance": var[order[-1]],
             "min_variance": var[order[0]], "features": len(var), "constant_features": total - len(var),
             "examples": inputs.count},
            "Input feature variances differ by orders of magnitude, so the loss surface is stretched along the "
            "large-scale features: a learning rate small enough for them barely moves the others.", _FIX))
    return out
