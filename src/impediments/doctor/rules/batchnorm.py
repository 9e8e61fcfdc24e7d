"""Rules on BatchNorm use: small batches, Dropout before BN, inference mode in training, L2 with BN."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, finite, rule

DROPOUT_KINDS = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"})


def _forwards(stats) -> dict:
    return {"training_forwards": stats.model_training_steps, "sampled_steps": stats.sampled_steps,
            "batchnorm_layers": len(stats.batchnorm)}


def _min_independent(bn, th) -> int:
    return th.bn_min_examples if bn.examples_per_batch > 0 else th.bn_min_values


def independent_values(bn) -> int:
    """Values per channel that are (nearly) independent: the examples of the batch.

    A conv BN averages over ``N*H*W`` values per channel, but positions of one example are strongly
    correlated, so the noise of the batch mean and variance is set by the number of examples ``N``
    (Wu & He 2018 measure it in batch size, at 56x56 positions: 34.7% error at batch 2). Documents
    without the batch size fall back to the values per channel.
    """
    return min(bn.values_per_channel, bn.examples_per_batch) if bn.examples_per_batch > 0 else bn.values_per_channel


@rule("bn_small_batch", requires=("batchnorm",))
def bn_small_batch(stats, th):
    """BatchNorm layers whose per-channel statistics came from too few examples."""
    layers = {name: int(independent_values(bn)) for name, bn in stats.batchnorm.items()
              if bn.training_forwards > 0 and 0 < independent_values(bn) < _min_independent(bn, th)}
    if not layers:
        return []
    smallest = min(layers.values())
    return [finding(
        "bn_small_batch", "error" if smallest < th.bn_error_values else "warning", list(layers),
        {"min_examples_per_channel": smallest,
         "threshold": min(_min_independent(stats.batchnorm[n], th) for n in layers), "examples_per_channel": layers,
         "values_per_channel": {n: stats.batchnorm[n].values_per_channel for n in layers}},
        seen=_forwards(stats),
        confidence=f"the smallest batch seen gave {smallest} independent values (examples) per channel: "
                   f"counted, not estimated")]


@rule("dropout_before_bn", requires=("batchnorm",))
def dropout_before_bn(stats, th):
    """A Dropout directly feeding a BatchNorm (variance shift)."""
    pairs = {name: bn.preceded_by_name or bn.preceded_by
             for name, bn in stats.batchnorm.items() if bn.preceded_by in DROPOUT_KINDS}
    if not pairs:
        return []
    where = [w for name, drop in pairs.items() for w in (drop, name) if w]
    return [finding("dropout_before_bn", "warning", list(dict.fromkeys(where)), {"dropout_feeding_bn": pairs},
                    seen=_forwards(stats), confidence="the module order was observed in a sampled forward")]


@rule("bn_inference_mode_in_training", requires=("batchnorm",))
def bn_inference_mode_in_training(stats, th):
    """BatchNorm layers normalizing with running statistics while the model trains (some of them, or frozen)."""
    on_purpose, by_accident = {}, {}
    for name, bn in stats.batchnorm.items():
        if bn.running_stats_forwards_in_training > 0:
            ev = {"forwards_with_running_stats": bn.running_stats_forwards_in_training,
                  "training_forwards": bn.training_forwards}
            (on_purpose if bn.frozen else by_accident)[name] = ev
    out = []
    confidence = "counted at every training-mode forward of the model"
    if by_accident:
        out.append(finding("bn_inference_mode_in_training", "warning", list(by_accident), {"layers": by_accident},
                           seen=_forwards(stats), confidence=confidence))
    if on_purpose:
        out.append(finding(
            "bn_inference_mode_in_training", "info", list(on_purpose), {"layers": on_purpose, "frozen": True},
            "These BatchNorm layers are frozen with impediments.norm.freeze and use their running statistics on "
            "purpose (Keras trainable=False semantics).",
            "Nothing to fix if intended; unfreeze with impediments.norm.unfreeze(model) for full fine-tuning",
            seen=_forwards(stats), confidence=confidence))
    return out


@rule("weight_decay_with_bn", requires=("batchnorm",))
def weight_decay_with_bn(stats, th):
    """L2 on weights feeding a BatchNorm (scale-invariant: only the effective learning rate changes)."""
    layers = {bn.feeding_layer: {"weight_decay": float(bn.feeding_weight_decay), "batchnorm": name}
              for name, bn in stats.batchnorm.items()
              if bn.feeding_layer and finite(bn.feeding_weight_decay) and bn.feeding_weight_decay > 0}
    if not layers:
        return []
    return [finding("weight_decay_with_bn", "info", list(layers),
                    {"layers": layers, "max_weight_decay": max(ev["weight_decay"] for ev in layers.values())},
                    seen=_forwards(stats), confidence="read from the optimizer's parameter groups")]
