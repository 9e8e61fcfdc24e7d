"""Rule on the first NaN/Inf seen anywhere (loss, activation, gradient, parameter or input)."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule

_WHY = {
    "input": "the data itself contains NaN or Inf",
    "activation": "a layer's output overflowed (exploding activations) or an operation was undefined",
    "gradient": "the backward pass overflowed (exploding gradients or an undefined derivative)",
    "parameter": "an update wrote NaN/Inf into the weights (learning rate far too large)",
    "loss": "the loss overflowed (diverging training, or log of zero)",
}


@rule("non_finite", requires=())
def non_finite(stats, th):
    """Report where and when the first NaN/Inf appeared."""
    nf = getattr(stats, "nonfinite", None)
    if nf is None:
        return []
    kind = getattr(nf, "kind", "unknown")
    return [finding(
        "non_finite", "error", [nf.where], {"step": nf.step, "kind": kind, "where": nf.where},
        f"A NaN or Inf first appeared at step {nf.step} in {nf.where} ({kind}): {_WHY.get(kind, 'overflow')}; "
        "once present it spreads to every weight it touches.",
        "Lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), check the data for NaN, use "
        "the variance-preserving init (impediments.init.initialize(model, \"he_normal\")) and numerically safe "
        "losses (F.cross_entropy on logits); see: impediments reproduce residual_limits")]
