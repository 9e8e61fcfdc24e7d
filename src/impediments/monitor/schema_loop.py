"""The training loop's part of the monitor schema (:class:`LoopStats`, read by ``doctor/rules/loop.py``),
re-exported by :mod:`impediments.monitor.schema`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoopParamStats:
    """One trainable parameter as the training loop treated it (:mod:`~impediments.monitor.loop`).

    ``order`` is the forward order of its module on sampled steps (None: the module never ran);
    ``in_optimizer`` and ``lr`` are None without a watched optimizer; ``received`` counts the sampled
    backward passes that wrote its ``.grad``, ``gradient_norm_sum`` sums those gradients' norms;
    ``changed``: its fingerprint (norm, sum, ramp-weighted sample) differs between entering and leaving
    ``watch()``; ``stale`` counts sampled
    backward passes that began with the previous optimizer step's non-zero gradient still in ``.grad``.
    """

    module: str
    order: int | None
    in_optimizer: bool | None
    lr: float | None
    received: int
    gradient_norm_sum: float
    changed: bool
    stale: int
    #: its norm when last fingerprinted (leaving ``watch()``, or now)
    weight_norm: float | None = None


@dataclass
class LossCallStats:
    """Calls of one loss function seen on sampled steps, with what fed them.

    ``input_from`` counts the autograd node that produced the loss input (``SoftmaxBackward0``, ...);
    ``probability_rows`` counts calls whose input rows were probability distributions (in [0, 1],
    summing to 1), and ``max_probability`` is their mean largest probability (saturation). For
    regression losses, ``shape_mismatches`` counts calls whose input and target shapes differ; the
    first pair and the number of values after broadcasting are kept.
    """

    calls: int
    input_from: dict[str, int]
    classes: int | None
    probability_rows: int
    max_probability: float | None
    shape_mismatches: int
    input_shape: list[int] | None
    target_shape: list[int] | None
    broadcast_numel: int | None
    #: for probability inputs, the gradient reaching the logits over the one the loss on the logits gives
    gradient_scale: float | None = None


@dataclass
class LoopStats:
    """The training loop: steps, gradient clearing, loss calls, targets, inputs, learning rates, clipping.

    ``forwards_per_step`` is ``[min, max]`` training forwards between two optimizer steps;
    ``stale_steps`` the first sampled steps whose backward began with uncleared gradients. Targets:
    per sampled batch of integer class targets, the mean number of targets and of distinct classes,
    and the class counts over those batches. ``repeated_inputs`` counts sampled forwards whose input
    equalled the previous sampled one, of ``compared_inputs``. ``learning_rates``: per param group,
    ``first``, ``max``, ``min``, ``last`` and ``below[k]``, the first step with lr <= max / 10^(k+1).
    ``clip_at_least[k]`` counts ``clip_grad_norm_`` calls with total norm >= 10^k max_norm.
    """

    optimizer_steps: int
    forwards_per_step: list[int]
    backwards: int
    grad_checks: int
    stale_steps: list[int]
    params: dict[str, LoopParamStats]
    losses: dict[str, LossCallStats]
    target_batches: int
    targets_per_batch: float | None
    distinct_classes_per_batch: float | None
    class_counts: list[int]
    compared_inputs: int
    repeated_inputs: int
    learning_rates: list[dict]
    clip_calls: int
    clip_max_norm: float | None
    clip_at_least: list[int]
    clip_log_ratio_mean: float | None

    @classmethod
    def from_dict(cls, d: dict) -> "LoopStats":
        d = dict(d)
        d["params"] = {k: LoopParamStats(**v) for k, v in d["params"].items()}
        d["losses"] = {k: LossCallStats(**v) for k, v in d["losses"].items()}
        return cls(**d)
