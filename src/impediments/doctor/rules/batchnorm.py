"""Rules on BatchNorm use: small batches, Dropout before BN, inference mode in training, L2 with BN."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, finite, rule

DROPOUT_KINDS = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"})


@rule("bn_small_batch", requires=("batchnorm",))
def bn_small_batch(stats, th):
    """BatchNorm layers whose per-channel statistics came from too few values."""
    layers = {}
    for name, bn in stats.batchnorm.items():
        values = getattr(bn, "values_per_channel", None)
        if (getattr(bn, "training_forwards", 0) or 0) > 0 and finite(values) and 0 < values < th.bn_min_values:
            layers[name] = int(values)
    if not layers:
        return []
    smallest = min(layers.values())
    return [finding(
        "bn_small_batch", "error" if smallest < th.bn_error_values else "warning", list(layers),
        {"min_values_per_channel": smallest, "threshold": th.bn_min_values, "values_per_channel": layers},
        "BatchNorm normalizes with the mean and variance of the current batch; from this few values per channel "
        "those estimates are noisy, so training sees a randomly rescaled network and inference (running "
        "statistics) sees a different one.",
        "Use a larger batch, or a batch-independent norm: impediments.norm.GroupNorm / impediments.norm.LayerNorm "
        "(or torch.nn.SyncBatchNorm across devices); see: impediments reproduce small_batch_norms")]


@rule("dropout_before_bn", requires=("batchnorm",))
def dropout_before_bn(stats, th):
    """A Dropout directly feeding a BatchNorm (variance shift)."""
    pairs = {name: getattr(bn, "preceded_by_name", None) or getattr(bn, "preceded_by", None)
             for name, bn in stats.batchnorm.items() if getattr(bn, "preceded_by", None) in DROPOUT_KINDS}
    if not pairs:
        return []
    where = [w for name, drop in pairs.items() for w in (drop, name) if w]
    return [finding(
        "dropout_before_bn", "warning", list(dict.fromkeys(where)), {"dropout_feeding_bn": pairs},
        "Dropout scales the variance of its output by about 1/p during training but not at inference, so the "
        "BatchNorm after it learns running statistics that do not match test-time inputs (variance shift).",
        "Move Dropout after the last BatchNorm (just before the classifier), or drop it; measure the shift with "
        "impediments.norm.variance_shift; see: impediments reproduce bn_dropout")]


@rule("bn_inference_mode_in_training", requires=("batchnorm",))
def bn_inference_mode_in_training(stats, th):
    """BatchNorm layers normalizing with running statistics while the model trains."""
    on_purpose, by_accident = {}, {}
    for name, bn in stats.batchnorm.items():
        count = getattr(bn, "running_stats_forwards_in_training", 0) or 0
        if count > 0:
            ev = {"forwards_with_running_stats": count, "training_forwards": getattr(bn, "training_forwards", None)}
            (on_purpose if getattr(bn, "frozen", False) else by_accident)[name] = ev
    out = []
    if by_accident:
        out.append(finding(
            "bn_inference_mode_in_training", "warning", list(by_accident), {"layers": by_accident},
            "These BatchNorm layers were in eval mode while the model trained, so they normalize with stale "
            "running statistics that no longer match the changing activations; a later model.train() silently "
            "flips them back, so their behaviour depends on call order.",
            "To freeze BN on purpose (transfer learning) use impediments.norm.freeze(model), which survives "
            "model.train(); otherwise do not call .eval() on BN layers during training; "
            "see: impediments reproduce frozen_bn_transfer"))
    if on_purpose:
        out.append(finding(
            "bn_inference_mode_in_training", "info", list(on_purpose), {"layers": on_purpose, "frozen": True},
            "These BatchNorm layers are frozen with impediments.norm.freeze and use their running statistics on "
            "purpose (Keras trainable=False semantics).",
            "Nothing to fix if intended; unfreeze with impediments.norm.unfreeze(model) for full fine-tuning; "
            "see: impediments reproduce frozen_bn_transfer"))
    return out


@rule("weight_decay_with_bn", requires=("batchnorm",))
def weight_decay_with_bn(stats, th):
    """L2 on weights feeding a BatchNorm (scale-invariant: only the effective learning rate changes)."""
    layers = {bn.feeding_layer: {"weight_decay": float(bn.feeding_weight_decay), "batchnorm": name}
              for name, bn in stats.batchnorm.items()
              if getattr(bn, "feeding_layer", None) and finite(getattr(bn, "feeding_weight_decay", None))
              and bn.feeding_weight_decay > 0}
    if not layers:
        return []
    return [finding(
        "weight_decay_with_bn", "info", list(layers),
        {"layers": layers, "max_weight_decay": max(ev["weight_decay"] for ev in layers.values())},
        "BatchNorm makes the output invariant to the scale of these weights, so L2 does not regularize them: it "
        "only shrinks ||w|| and thereby raises the effective learning rate eta / ||w||^2 (van Laarhoven 2017).",
        "Keep it if you tuned the learning rate with it; otherwise put these weights in a parameter group with "
        "weight_decay=0 and tune the learning rate directly; see: impediments reproduce l2_with_bn")]
