"""Rule on the first NaN/Inf seen anywhere (loss, activation, gradient, parameter or input)."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule

_WHY = {
    "input": "the data itself contains NaN or Inf",
    "activation": "a layer's output overflowed (exploding activations) or an operation was undefined",
    "output": "the model's output overflowed or an operation was undefined",
    "gradient": "the backward pass overflowed (exploding gradients or an undefined derivative)",
    "parameter": "an update wrote NaN/Inf into the weights (learning rate far too large)",
    "loss": "the loss overflowed (diverging training, or log of zero)",
}


@rule("non_finite", requires=())
def non_finite(stats, th):
    """Report where and when the first NaN/Inf appeared."""
    nf = stats.nonfinite
    if nf is None:
        return []
    return [finding(
        "non_finite", "error", [nf.where], {"step": nf.step, "kind": nf.kind, "where": nf.where},
        f"A NaN or Inf first appeared at step {nf.step} in {nf.where} ({nf.kind}): {_WHY.get(nf.kind, 'overflow')}; "
        "once present it spreads to every weight it touches.",
        seen={"steps": stats.steps, "training_forwards": stats.model_training_steps},
        confidence="outputs and loss checked at every step, gradient norms on sampled steps (a NaN gradient in "
                   "between reaches the next output), located by replay on CPU")]
