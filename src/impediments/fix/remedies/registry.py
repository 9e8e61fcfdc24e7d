"""Which remedies treat which doctor code, in the order they are tried.

Remedies are listed per code; a remedy shared by several codes is one entry (and
one trial). A code the doctor does not define is skipped by :func:`remedies_for`,
so the table may name codes that other modules add later.
"""
from __future__ import annotations

from impediments.fix.remedies import graph, init_scale, loop, loss_shapes, nonlinearity, op_guard, residual
from impediments.fix.remedies import model as m
from impediments.fix.remedies import training as t
from impediments.fix.remedies import head as h
from impediments.fix.remedies.base import Remedy

_GRADIENT_FLOW = ("vanishing_activations", "exploding_activations", "vanishing_gradients", "exploding_gradients")
_TOO_LARGE = ("exploding_activations", "exploding_gradients")
_ROWS = (
    # name, codes, slot, fn[, the remedy whose sweep it continues: x3 three times, then x10 while nothing changes]
    ("model_own_init", ("init_scale_too_large", "initial_loss_high"), "init", init_scale.model_own_init),
    ("variance_preserving_init", ("dead_units", "linear_regime", "symmetric_units", *_GRADIENT_FLOW,
                                  "loss_plateau"), "init", m.variance_preserving_init),
    ("lsuv_init", ("dead_units", "linear_regime", *_GRADIENT_FLOW), "init", m.lsuv_init),
    # after the two re-inits, so that a run budget too small for all three still tries LSUV (data-calibrated, it
    # also fixes inputs on the wrong scale); with the budget for all, the smallest verified change is chosen
    ("zero_biases", ("dead_units",), "init", m.zero_biases),
    ("glorot_init", ("saturated_units",), "init", m.glorot_init),
    ("recurrent_default_init", ("saturated_units", *_GRADIENT_FLOW), "init", m.recurrent_default_init),
    ("fixup_init", _GRADIENT_FLOW, "init", m.fixup_init),
    ("zero_init_residual_branches", _TOO_LARGE, "init", residual.zero_init_residual_branches),
    ("leaky_relu_swap", ("dead_units",), "activation", m.leaky_relu_swap),
    ("gelu_swap", ("dead_units",), "activation", m.gelu_swap),
    ("tanh_for_sigmoid", ("saturated_units", "vanishing_gradients"), "activation", m.tanh_for_sigmoid),
    ("relu_for_sigmoid", ("saturated_units", "vanishing_gradients"), "activation", m.relu_for_sigmoid),
    ("batchnorm_before_activation", ("saturated_units", *_GRADIENT_FLOW), "structure", m.batchnorm_before_activation),
    ("layernorm_before_activation", _GRADIENT_FLOW, "structure", m.layernorm_before_activation),
    ("groupnorm_for_batchnorm", ("bn_small_batch",), "structure", m.groupnorm_for_batchnorm),
    ("layernorm_for_batchnorm", ("bn_small_batch",), "structure", m.layernorm_for_batchnorm),
    ("larger_batch", ("bn_small_batch",), "batch", t.larger_batch),
    ("dropout_after_batchnorm", ("dropout_before_bn",), "structure", m.dropout_after_batchnorm),
    ("restore_training_mode", ("bn_inference_mode_in_training", "model_in_eval_mode"), "mode",
     t.restore_training_mode),
    ("no_decay_before_batchnorm", ("weight_decay_with_bn",), "optimizer", t.no_decay_before_batchnorm),
    ("standardize_inputs", ("uncentered_inputs", "unequal_input_scales"), "data", t.standardize_inputs),
    ("drop_nonfinite_examples", ("non_finite",), "data", t.drop_nonfinite_examples),
    ("guarded_op", ("non_finite",), "guard", op_guard.guarded_op),
    ("plain_train_step", ("gradients_not_cleared", "gradient_clipping_dominates", "learning_rate_collapsed",
                          "model_in_eval_mode", "parameters_not_updated", "parameters_without_gradient",
                          "optimizer_rarely_steps", "parameters_reset"), "loop", loop.plain_train_step),
    ("reshuffled_batches", ("unshuffled_batches", "repeated_batch"), "batch", loop.reshuffled_batches),
    ("optimizer_over_model_parameters", ("parameters_not_updated",), "optimizer",
     loop.optimizer_over_model_parameters),
    ("drop_final_softmax", ("softmax_before_loss",), "structure", loop.drop_final_softmax),
    ("default_loss_on_logits", ("softmax_before_loss",), "loss", loop.default_loss_on_logits),
    ("reconnected_graph", ("parameters_without_gradient",), "graph", graph.reconnected_graph),
    ("matched_loss_shapes", ("loss_broadcast",), "loss", loss_shapes.matched_loss_shapes),
    ("lr_down_10", ("dead_units", *_TOO_LARGE, "non_finite"), "optimizer", t.scale_lr(0.1)),
    ("matched_output_activation", ("output_head_mismatch",), "structure", h.matched_output_activation),
    ("destandardized_output", ("unscaled_targets",), "structure", h.destandardized_output),
    ("lr_down_3", ("diverging_loss",), "optimizer", t.scale_lr(1 / 3)),
    ("lr_down_9", ("diverging_loss",), "optimizer", t.scale_lr(1 / 9)),
    ("lr_down_27", ("diverging_loss",), "optimizer", t.scale_lr(1 / 27)),
    ("lr_up_10", ("learning_rate_too_low",), "optimizer", t.scale_lr(10.0)),
    ("lr_up_100", ("learning_rate_too_low",), "optimizer", t.scale_lr(100.0), "lr_up_10"),
    ("relu_between_layers", ("no_nonlinearity",), "structure", nonlinearity.relu_between_layers),
    ("lr_up_3", ("loss_plateau",), "optimizer", t.scale_lr(3.0)),
    ("lr_up_9", ("loss_plateau",), "optimizer", t.scale_lr(9.0)),
    ("lr_up_27", ("loss_plateau",), "optimizer", t.scale_lr(27.0)),
    ("lr_down_270", ("diverging_loss",), "optimizer", t.scale_lr(1 / 270), "lr_down_27"),
    ("lr_down_2700", ("diverging_loss",), "optimizer", t.scale_lr(1 / 2700), "lr_down_270"),
    ("lr_up_270", ("loss_plateau",), "optimizer", t.scale_lr(270.0), "lr_up_27"),
    ("lr_up_2700", ("loss_plateau",), "optimizer", t.scale_lr(2700.0), "lr_up_270"),
    ("lr_up_27000", ("loss_plateau",), "optimizer", t.scale_lr(27000.0), "lr_up_2700"),
    ("lr_up_270000", ("loss_plateau",), "optimizer", t.scale_lr(270000.0), "lr_up_27000"),
    ("clip_gradients", (*_TOO_LARGE, "non_finite", "diverging_loss"), "clip", t.clip_gradients),
    ("warmup", ("diverging_loss",), "warmup", t.warmup),
)


#: how much of the program a remedy changes, smallest first: 0 the biases' values only; 1 one setting (the
#: weights' init, the learning rate, clipping, warm-up, the batch, the data's scaling, the loop's step: one
#: line, the model's function and structure untouched); 2 the model's function (an activation swapped, an op
#: guarded); 3 its structure (layers added, moved or removed, the graph rewired). ``impediments fix`` prefers,
#: among the verified fixes that clear the report's root cause, the smallest (:func:`extent`)
EXTENT_OF_SLOT = {"data": 1, "batch": 1, "init": 1, "mode": 1, "loss": 1, "optimizer": 1, "loop": 1, "clip": 1,
                  "warmup": 1, "activation": 2, "guard": 2, "structure": 3, "graph": 3}
#: remedies smaller than their slot's extent
EXTENT = {"zero_biases": 0}


def extent(names) -> int:
    """The size of a change (:data:`EXTENT_OF_SLOT`): a combination's is its largest part's."""
    return max(EXTENT.get(n, EXTENT_OF_SLOT[REMEDIES[n].slot]) for n in names)


def _description(fn) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0]


REMEDIES: dict[str, Remedy] = {row[0]: Remedy(row[0], row[1], row[2], _description(row[3]), row[3], *row[4:])
                               for row in _ROWS}


def remedies_for(code: str) -> list[Remedy]:
    """The remedies of ``code`` in the order they are tried; empty for a code the doctor does not define."""
    from impediments.doctor.codes import CODES

    if code not in CODES:
        return []
    return [r for r in REMEDIES.values() if code in r.codes and r.continues is None]


def continuation(name: str) -> str | None:
    """The remedy that extends ``name``'s sweep, if any."""
    return next((r.name for r in REMEDIES.values() if r.continues == name), None)
