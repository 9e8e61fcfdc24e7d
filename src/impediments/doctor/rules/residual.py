r"""The gradient along a residual stream (:class:`~impediments.monitor.schema.ResidualStreamStats`).

The stream's gradient is the one back-propagated signal that is comparable from block to block
(:mod:`impediments.monitor.probes.residual`): every block's weights see it through their own branch. Blocks
of one shape (a ResNet stage, a transformer's layers) are compared along a least-squares geometric
trend of :math:`\overline{g_l^2}`, last (output side) over first (input side), against the same bound
as gradients across depth (``gradient_var_ratio``).

* **Growing toward the input** (ratio below ``1/r``): each unnormalized block adds its branch's
  variance to the backward signal, :math:`\overline{g_l^2} \approx \overline{g_{l+1}^2}(1 + c)`
  (Zhang et al. 2019, Fixup; Hanin & Rolnick 2018). ``exploding_gradients``.
* **Shrinking toward the input** (ratio above ``r``): the stream loses the signal on its way back,
  as in deep post-LN transformers, whose layer norms divide the gradient at every block (Xiong et al.
  2020). ``vanishing_gradients``.

With an adaptive optimizer each parameter's step is normalized by its own gradient scale, so a spread
stream is not a learning-rate mismatch: the finding is ``info``. Fewer than ``depth_min_layers``
blocks of one shape give no trend and no finding.

**One stream at a time.** Blocks are compared within one stack (:func:`~impediments.doctor.rules.gradients.stream_of`):
an encoder-decoder's encoder and decoder are two streams, the encoder's output entering every decoder
block through cross-attention, so their blocks are never fitted as one trend even when their shapes agree.

**Normalized streams at init.** Where the blocks hold a LayerNorm/RMSNorm (pre-LN re-normalizes what
each branch sees, post-LN re-normalizes the stream itself after every add), the trend is the one
Xiong et al. (2020) derive: post-LN divides the stream's gradient by the RMS of ``x + F(x)`` at every
block, so it shrinks toward the input, by design, and the standard recipe (Adam with warm-up) is what
serves it. Whether it impedes training is therefore a property of the optimizer, not of the init:
without a known optimizer (``checkup``, or ``watch()`` given none) it is not checked, and ``watch()``
with the optimizer decides (a warning under plain SGD, info under an adaptive one).
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, finite, geometric_ratio, not_checked, rule
from impediments.doctor.rules.gradients import ADAPTIVE_OPTIMIZERS, stream_of

_TEXT = {
    "exploding_gradients": (
        "The gradient along the residual stream grows block by block toward the input: each block adds its "
        "branch's variance to the backward signal, so the first blocks get far larger gradients than the last "
        "and one learning rate cannot suit both.",
        "Scale each residual branch down at init: impediments.init.fixup(model) (Zhang et al. 2019), or zero-init "
        "the last layer (or last norm's weight) of every branch, or add normalization inside the branches"),
    "vanishing_gradients": (
        "The gradient along the residual stream shrinks block by block toward the input, so the first blocks "
        "learn far more slowly than the last (as in deep post-LN transformers, Xiong et al. 2020).",
        "Put the normalization inside the branch (pre-LN: x + F(LN(x))), use learning-rate warm-up, or scale "
        "the branches down at init"),
}


def _groups(stream) -> dict[tuple, list[tuple[int, str, float]]]:
    """Blocks by (stream, shape), each group sorted by depth."""
    out: dict[tuple, list] = {}
    for name, s in stream.items():
        if s.samples > 0 and finite(s.grad_mean_square) and s.grad_mean_square > 0:
            out.setdefault((stream_of(name), tuple(s.shape)), []).append((s.depth, name, float(s.grad_mean_square)))
    return {key: sorted(chain) for key, chain in out.items()}


@rule("vanishing_gradients", "exploding_gradients", requires=())
def gradient_along_residual_stream(stats, th):
    """The stream's gradient mean square trending geometrically across blocks of one shape."""
    adaptive = bool(stats.optimizer) and stats.optimizer.get("type") in ADAPTIVE_OPTIMIZERS
    out = []
    for (stream, shape), chain in _groups(stats.residual_stream).items():
        if len(chain) < th.depth_min_layers:
            continue
        ratio = geometric_ratio([v for _, _, v in chain])      # last / first (output side / input side)
        code = ("vanishing_gradients" if ratio > th.gradient_var_ratio else
                "exploding_gradients" if ratio < 1 / th.gradient_var_ratio else None)
        if code is None:
            continue
        names = [n for _, n, _ in chain]
        norm = next((stats.residual_stream[n].norm for n in names if stats.residual_stream[n].norm), "")
        if norm and not stats.optimizer:
            post = sum(stats.residual_stream[n].post_norm for n in names)
            out.append(not_checked(code, names[:3], (
                f"the gradient along {stream or 'the stream'} ({len(chain)} blocks) spans "
                f"{abs(math.log10(ratio)):.1f} decades, but its blocks hold a {norm} "
                f"({'post-norm, after the residual add' if post else 'inside the branches'}): whether that spread "
                f"impedes training depends on the optimizer (Adam evens it out), which watch() with the optimizer "
                f"measures")))
            continue
        explanation, remedy = _TEXT[code]
        if adaptive:
            explanation += (f" The optimizer ({stats.optimizer.get('type')}) normalizes each parameter's step by "
                            f"its own gradient scale, which evens this out.")
        out.append(finding(
            code, "info" if adaptive else "warning", names,
            {"output_over_input_grad_mean_square": ratio, "threshold": th.gradient_var_ratio,
             "blocks": len(chain), "block_shape": list(shape),
             "grad_mean_square_by_block": {n: v for _, n, v in chain}},
            explanation, remedy,
            seen={"blocks": len(chain), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
            confidence=f"a geometric trend over {len(chain)} residual blocks of shape {list(shape)}, "
                       f"{abs(math.log10(ratio)):.1f} decades first to last"))
    return out
