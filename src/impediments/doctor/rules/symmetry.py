"""Rule on unbroken symmetry: units of a hidden layer with identical incoming weights."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule


def _output_layers(stats) -> set[str]:
    """Layers at the largest depth: their units get distinct gradients from the loss, so symmetry there is harmless."""
    depths = [l.depth for l in stats.layers.values() if l.depth is not None]
    if not depths:
        return set()
    return {n for n, l in stats.layers.items() if l.depth == max(depths)}


@rule("symmetric_units", requires=("symmetry",))
def symmetric_units(stats, th):
    """Hidden layers with groups of units whose incoming weights (and bias) are identical."""
    skip = _output_layers(stats)
    nf = stats.nonfinite
    layers, survived = {}, False
    for name, s in stats.symmetry.items():
        groups = [g for g in s.groups if len(g) >= 2]
        step = s.checked_at_step
        if name in skip or not groups or (nf is not None and step >= nf.step):
            continue                    # weights checked after a NaN/Inf are meaningless (non_finite says so)
        survived |= step > 0
        layers[name] = {"units": s.units, "groups": len(groups), "largest_group": max(map(len, groups)),
                        "units_in_groups": sum(map(len, groups)), "checked_at_step": step}
    if not layers:
        return []
    worst = max(layers.values(), key=lambda ev: ev["largest_group"])
    last = max(ev["checked_at_step"] for ev in layers.values())
    return [finding(
        "symmetric_units", "error" if survived else "warning", list(layers),
        {"largest_group": worst["largest_group"], "units": worst["units"], "layers": layers,
         "checked_at_step": last},
        remedy="Initialize with random weights: impediments.init.initialize(model, \"he_normal\") (ReLU) or "
               "\"glorot_normal\" (tanh/sigmoid); constant init is only safe for biases; "
               "see: impediments reproduce zero_init (and identical_init)",
        seen={"layers_checked": len(stats.symmetry), "checked_at_step": last},
        confidence="identical weight rows compared exactly (hashes to 1e-6 relative), "
                   + ("still identical after training steps" if survived else "at init only"))]
