"""Rule on the model's train/eval mode when the optimizer steps: ``model_in_eval_mode``.

The monitor counts, at each optimizer step (or backward pass without an optimizer), whether the
forwards since the previous step ran in training or in eval mode (one integer per forward: eval-mode
forwards are otherwise not recorded). A step preceded by eval-mode forwards only trains the model
that inference uses: Dropout off, BatchNorm on (and never updating) its running statistics. Some
BatchNorm layers in eval mode while the model trains is the partial case,
``bn_inference_mode_in_training``.
"""
from __future__ import annotations

from impediments.doctor.rules.base import finding, rule


@rule("model_in_eval_mode", requires=("mode",))
def model_in_eval_mode(stats, th):
    """Optimizer steps after eval-mode forwards only: an error if every step was, a warning if some were."""
    mode = stats.mode
    if mode.eval_only_steps == 0:
        return []
    steps = mode.eval_only_steps + mode.trained_steps
    every = mode.trained_steps == 0
    sensitive = mode.batchnorm + mode.dropout
    severity = ("error" if every else "warning") if sensitive else "info"
    evidence = {"steps_after_eval_forwards_only": mode.eval_only_steps, "steps_after_training_forwards":
                mode.trained_steps, "eval_forwards": mode.eval_forwards, "first_step": mode.first_eval_only_step,
                "batchnorm_layers": mode.batchnorm, "dropout_layers": mode.dropout}
    explanation = None if sensitive else (
        "The optimizer stepped after eval-mode forwards only, but the model has no BatchNorm or Dropout, so "
        "eval() changes nothing it computes: harmless here, and a trap once such a layer is added.")
    return [finding("model_in_eval_mode", severity, ["model"], evidence, explanation,
                    seen={"steps": steps, "eval_forwards": mode.eval_forwards},
                    confidence=f"{mode.eval_only_steps} of {steps} optimizer steps followed eval-mode forwards only "
                               f"(counted at every step, not sampled)")]
