r"""The init scale, read where it shows at the first step: each Linear/Conv layer's variance gain.

A layer :math:`y = W x + b` with zero-mean weights of variance :math:`\sigma_w^2`, independent of its
input, has

.. math:: \operatorname{Var}(y) = \text{fan\_in}\;\sigma_w^2\;\overline{x^2}

(LeCun et al. 1998, Efficient BackProp; Glorot & Bengio 2010; He et al. 2015). A variance-preserving
init sets :math:`\text{fan\_in}\,\sigma_w^2` to 1 (LeCun, Glorot) or 2 (He, for a ReLU's halved second
moment); PyTorch's default Linear init gives 1/3, and a transformers model's ``initializer_range``
0.02 gives :math:`0.0004\,\text{fan\_in}` (0.03 at width 64, 0.3 at 768), the LayerNorms rescaling the
stream. Initialized at std 1.0 (``initializer_range=1.0``, or ``nn.init.normal_`` with its default
std), every layer multiplies the variance by its fan-in: 64 at width 64. That is the cause; the
symptoms follow from it (a residual stream whose RMS grows by orders of magnitude per block, logits
so large that the initial loss sits far above :math:`\ln C`, saturated softmaxes and gates, gradient
norms that overflow). The residual stream's RMS at init, block by block
(:attr:`~impediments.monitor.schema.ResidualStreamStats.rms_at_init`), is shown with it.

The gain is measured directly, :math:`\operatorname{Var}(y) / \overline{x^2}`, from the moments of each
layer's input and output on its first recorded step
(:attr:`~impediments.monitor.schema.LayerOutputStats.input_at_init`), and the implied weight std is
:math:`\sqrt{\text{gain} / \text{fan\_in}}`. The median over the layers of one kind (Linear, Conv1d,
...) is compared with ``init_gain_too_large``: one layer with a large gain (a deliberately scaled
projection) is not the init of the model, and an init scale is set per kind (a config's
``initializer_range`` reaches a wav2vec-style model's Linears, not its convolutional feature extractor).

A layer counts only where its stored weights give that gain too: :math:`\text{fan\_in}\,\overline{W^2}` at init
(:attr:`~impediments.monitor.schema.LayerOutputStats.weight_at_init`) at least ``init_gain_too_large`` as well. A
forward that applies a transformed weight sets its own gain whatever the stored one: a weight-standardized
convolution (BiT; Qiao et al. 2019, "Micro-Batch Training with Batch-Channel Normalization and Weight
Standardization") applies :math:`\hat W = (W - \mu) / \sigma` per filter, so its gain is fan_in (72-144 in
BiT's tiny stages) with a stored Kaiming weight giving 1-2, and no init of the stored weight changes it (the
GroupNorm after it rescales the output anyway). Such layers are listed apart, not counted.
"""
from __future__ import annotations

import math
import statistics

from impediments.doctor.rules.base import by_depth, finding, finite, rule


def stored_weight_gain(layer) -> float | None:
    r""":math:`\text{fan\_in}\,\overline{W^2}` of the layer's stored weight at init (None where not recorded)."""
    w = layer.weight_at_init
    if w is None or w.count == 0 or not layer.fan_in or not finite(w.var):
        return None
    return layer.fan_in * (w.var + w.mean ** 2)


def layer_gains(stats) -> dict[str, tuple[float, int]]:
    """``{layer: (variance gain at init, fan_in)}`` for every layer whose init moments were recorded."""
    out = {}
    for name, layer in by_depth(stats.layers):
        x, y = layer.input_at_init, layer.output_at_init
        if x is None or y is None or x.count == 0 or y.count == 0:
            continue
        second = x.var + x.mean ** 2
        if finite(second) and second > 0 and finite(y.var):
            out[name] = (y.var / second, layer.fan_in)
    return out


@rule("init_scale_too_large", requires=("layers",))
def init_scale_too_large(stats, th):
    """The median Linear/Conv variance gain at init at least ``init_gain_too_large`` (module docstring)."""
    every = layer_gains(stats)
    # a layer whose stored weights give a small gain applies a transformed weight (weight standardization): its gain
    # is not the init's doing, so it is not counted
    transformed = {n: (g, stored) for n, (g, _) in every.items() if g >= th.init_gain_too_large
                   and (stored := stored_weight_gain(stats.layers[n])) is not None and stored < th.init_gain_too_large}
    every = {n: v for n, v in every.items() if n not in transformed}
    # per layer kind: an init scale is set per kind (initializer_range reaches the Linears of a wav2vec-style
    # model, not its convolutional feature extractor, which keeps its own Kaiming init and would dilute a median)
    kinds: dict[str, dict] = {}
    for name, gain in every.items():
        kinds.setdefault(stats.layers[name].kind, {})[name] = gain
    found = [(statistics.median(g for g, _ in k.values()), k) for k in kinds.values() if len(k) >= th.depth_min_layers]
    found = [(m, k) for m, k in found if m >= th.init_gain_too_large]
    if not found:
        return []
    median, gains = max(found, key=lambda mk: len(mk[1]))
    large = {n: g for n, (g, _) in gains.items() if g >= th.init_gain_too_large}
    stds = [math.sqrt(g / f) for g, f in gains.values() if f > 0 and g > 0]
    implied = statistics.median(stds) if stds else None
    fans = sorted({f for _, f in gains.values() if f > 0})
    shown = dict(sorted(large.items(), key=lambda kv: -kv[1])[:8])
    stream = {n: s.rms_at_init for n, s in sorted(stats.residual_stream.items(), key=lambda kv: kv[1].depth)
              if finite(s.rms_at_init)}
    std_text = f", as weights of std {implied:.2g} would give" if implied is not None else ""
    return [finding(
        "init_scale_too_large", "error", list(large),
        {"median_gain": median, "threshold": th.init_gain_too_large, "layers_measured": len(gains),
         "layers_above": len(large), "implied_weight_std": implied, "fan_in": fans[:6],
         "gain_by_layer": shown, "growth_per_10_layers_decades": 10 * math.log10(median),
         "stream_rms_at_init": dict(list(stream.items())[:8]),
         "not_counted_transformed_weight": {n: {"gain": g, "stored_weight_gain": w}
                                            for n, (g, w) in list(transformed.items())[:8]}},
        f"At the first step the median Linear/Conv layer multiplied its input's variance by {median:.3g} "
        f"({len(large)} of {len(gains)} layers at least {th.init_gain_too_large:g}){std_text} at fan_in "
        f"{', '.join(str(f) for f in fans[:3])}. A variance-preserving init gives 1-2, so the signal grows "
        f"{math.log10(median):.1f} decades per layer unless a norm re-scales it"
        + (f" (the residual stream's RMS at init: {', '.join(f'{v:.3g}' for v in list(stream.values())[:4])} "
           f"block by block)" if stream else "")
        + ", and the outputs start large and "
        "confidently wrong: the init scale is the cause of the large activations, logits, initial loss and "
        "gradients reported with it.",
        None,
        seen={"layers": len(gains), "step": "first recorded"},
        confidence=f"measured Var(y) / mean(x^2) of {len(gains)} layers on their first forward; the median "
                   f"is {median / th.init_gain_too_large:.1f}x the {th.init_gain_too_large:g} bound")]
