"""Display names of the remedies: what a person reads in the table (``learning rate ×27``, ``bias → 0``).

The registry's keys (``lr_up_27``, ``variance_preserving_init``) stay the identifiers in JSON, in
``--budget-runs`` bookkeeping and in the playground's projections; :func:`label` only says them in words.
"""
from __future__ import annotations

import re

LABELS = {
    "model_own_init": "the model's own init",
    "zero_biases": "bias → 0",
    "variance_preserving_init": "He/Glorot init, bias → 0",
    "lsuv_init": "LSUV init, bias → 0",
    "glorot_init": "Glorot init, bias → 0",
    "recurrent_default_init": "recurrent layers' default init",
    "fixup_init": "Fixup init",
    "zero_init_residual_branches": "residual branches' last layer → 0",
    "leaky_relu_swap": "ReLU → LeakyReLU",
    "gelu_swap": "ReLU → GELU",
    "tanh_for_sigmoid": "sigmoid → tanh",
    "relu_for_sigmoid": "sigmoid → ReLU",
    "batchnorm_before_activation": "BatchNorm before each activation",
    "layernorm_before_activation": "LayerNorm before each activation",
    "groupnorm_for_batchnorm": "BatchNorm → GroupNorm",
    "layernorm_for_batchnorm": "BatchNorm → LayerNorm",
    "larger_batch": "larger batch",
    "dropout_after_batchnorm": "Dropout after BatchNorm",
    "restore_training_mode": "train() while training",
    "no_decay_before_batchnorm": "no weight decay before BatchNorm",
    "standardize_inputs": "standardized inputs",
    "drop_nonfinite_examples": "drop non-finite examples",
    "guarded_op": "op input clamped to its domain",
    "plain_train_step": "plain training step",
    "reshuffled_batches": "reshuffled batches",
    "optimizer_over_model_parameters": "optimizer over the model's parameters",
    "drop_final_softmax": "no softmax before the loss",
    "default_loss_on_logits": "loss on logits",
    "reconnected_graph": "reconnected graph",
    "matched_loss_shapes": "loss input shaped as its target",
    "matched_output_activation": "output activation matched to the loss",
    "destandardized_output": "standardized targets",
    "clip_gradients": "gradient norm clipped to 1",
    "warmup": "learning-rate warm-up",
    "relu_between_layers": "ReLU between the stacked layers",
}

_LR = re.compile(r"lr_(up|down)_(\d+)")


def label(name: str) -> str:
    """The words for remedy ``name``: ``"lr_up_27"`` -> ``"learning rate ×27"``, ``"lr_down_10"`` ->
    ``"learning rate ÷10"``; a name not listed reads with spaces for underscores."""
    lr = _LR.fullmatch(name)
    if lr:
        return f"learning rate {'×' if lr.group(1) == 'up' else '÷'}{int(lr.group(2)):,}"
    return LABELS.get(name, name.replace("_", " "))


def row_label(names) -> str:
    """A combination's words: its remedies' labels joined by ``" + "``."""
    return " + ".join(label(n) for n in names)
