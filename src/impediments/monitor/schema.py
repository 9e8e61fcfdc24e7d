"""Plain-data schema of the monitor's statistics (what ``Monitor.stats()`` returns).

Every value is a Python number, list or dict: detached, on the host, produced only when
statistics are read. The doctor reads only these fields; fields may be added, never renamed.
``SCHEMA_VERSION`` is bumped on any incompatible change and checked by ``from_dict``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from impediments.monitor.schema_loop import LoopParamStats, LossCallStats, LoopStats  # noqa: F401  (the schema)

SCHEMA_NAME = "impediments.monitor.stats"
SCHEMA_VERSION = 1


@dataclass
class Histogram:
    """Counts over fixed signed-log edges (identical for every histogram, so histograms merge)."""

    edges: list[float]
    counts: list[int]


@dataclass
class MomentStats:
    """Chan/Welford-mergeable moments; ``var`` is the population variance (divides by ``count``)."""

    count: int
    mean: float
    var: float
    min: float
    max: float
    nonfinite: int


@dataclass
class ActivationStats:
    """One activation (module or functional call ``"module/kind#k"``).

    ``input`` holds the pre-activations. The region fractions use every pre-activation value of the
    sampled steps (:mod:`impediments.activations.regions`). Per unit (feature, or conv channel),
    ``unit_active_counts[i]`` counts the values of unit ``i`` outside the saturated region (for
    ReLU: pre-activation > 0), out of ``unit_total`` per unit; ``dead_units`` are units with none.
    ``histogram`` counts a deterministic subsample of the outputs (at most
    ``HIST_MAX_VALUES`` per tensor and step, :mod:`impediments.monitor.histogram`).
    """

    name: str
    kind: str
    depth: int
    samples: int
    output: MomentStats
    input: MomentStats
    histogram: Histogram
    saturated_fraction: float
    linear_fraction: float
    active_fraction: float
    units: int
    unit_active_counts: list[int] | None
    unit_total: int
    dead_units: list[int]
    #: values of one unit per example (1 for a Linear feature, H*W for a conv channel, T for a sequence)
    values_per_example: int = 0
    #: its output multiplied another tensor in a sampled forward (a gate: SE, GLU/SwiGLU, LSTM-style)
    gate: bool = False


@dataclass
class ParamStats:
    """Per parameter (name as in ``model.named_parameters()``)."""

    module: str
    grad_norm: float
    grad_norm_max: float
    weight_norm: float
    grad_to_weight: float
    update_to_weight: float
    samples: int


@dataclass
class LayerOutputStats:
    """Linear/Conv outputs (pre-activations) and the variance of their backward signal."""

    depth: int
    kind: str
    output: MomentStats
    grad_var: float | None
    #: output positions per example and channel (1 for a Linear on (N, features), H*W for a conv, T for (N, T, d))
    positions: int = 0


@dataclass
class SymmetryStats:
    """Groups (size >= 2) of units whose incoming weights and bias are identical."""

    units: int
    groups: list[list[int]]
    checked_at_step: int


@dataclass
class BatchNormStats:
    """How a BatchNorm layer was used while the model trained."""

    kind: str
    values_per_channel: int
    training_forwards: int
    running_stats_forwards_in_training: int
    frozen: bool
    preceded_by: str | None
    preceded_by_name: str | None
    feeding_layer: str | None
    feeding_weight_decay: float | None
    batch_mean_vs_running: float | None
    batch_var_vs_running: float | None
    #: the smallest batch (examples) it normalized; positions within an example are correlated
    examples_per_batch: int = 0


@dataclass
class InputStats:
    """Per-feature (flattened) mean and population variance of the model's first tensor input."""

    count: int
    mean: list[float]
    var: list[float]
    #: per-feature smallest and largest value seen (empty in documents written before they were kept)
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    #: one example's shape (``[C, H, W]`` for images); the features above are its flattened values
    shape: list[int] = field(default_factory=list)


@dataclass
class LossStats:
    """Recorded losses (``Monitor.record_loss``)."""

    count: int
    first: float
    last: float
    min: float
    window_means: list[float]
    first_nonfinite_step: int | None


@dataclass
class NonFinite:
    """First NaN/Inf: the step and where (``kind`` is loss, activation, gradient, parameter or input)."""

    step: int
    where: str
    kind: str


@dataclass
class Window:
    """Statistics over steps ``[start_step, end_step)``; adjacent windows merge when the buffer fills."""

    start_step: int
    end_step: int
    loss_mean: float | None
    activation_var: dict[str, float] = field(default_factory=dict)
    dead_fraction: dict[str, float] = field(default_factory=dict)
    grad_norm: dict[str, float] = field(default_factory=dict)
    #: per activation, its output histogram in this window (``HIST_EDGES`` bins): distributions over time
    histograms: dict[str, list[int]] = field(default_factory=dict)
    #: per activation: fractions of its pre-activations ``[saturated, linear, active]`` in this window
    region_fractions: dict[str, list[float]] = field(default_factory=dict)
    #: per activation: values seen per unit in this window, and the units never active in it
    unit_values: dict[str, int] = field(default_factory=dict)
    silent_units: dict[str, list[int]] = field(default_factory=dict)
    #: per parameter: its mean update-to-weight ratio over this window's sampled steps
    update_to_weight: dict[str, float] = field(default_factory=dict)




@dataclass
class ModeStats:
    """Train/eval mode of the watched model's forwards around optimizer steps.

    ``eval_only_steps`` counts optimizer steps (or backward passes, without an optimizer) preceded since
    the previous one by forwards of the model in eval mode only; ``trained_steps`` those preceded by at
    least one training-mode forward. ``batchnorm`` / ``dropout``: modules whose behaviour eval() changes.
    """

    eval_forwards: int = 0
    eval_only_steps: int = 0
    trained_steps: int = 0
    first_eval_only_step: int | None = None
    batchnorm: int = 0
    dropout: int = 0


@dataclass
class RecurrentStats:
    """Gradient through time of one ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (:mod:`~impediments.monitor.recurrent`).

    ``energy_by_steps_back[k]``: the gradient energy of a random projection of the last output with
    respect to the input ``k`` steps before it, over that at ``k = 0`` (so element 0 is 1), averaged
    over the sampled steps; ``sequences[k]``: how many sampled forwards were long enough to reach ``k``.
    """

    kind: str
    samples: int
    energy_by_steps_back: list[float]
    sequences: list[int]


@dataclass
class ResidualStreamStats:
    """The gradient at one residual block's output (:mod:`~impediments.monitor.residual`).

    ``grad_mean_square``: :math:`\\overline{(\\partial L / \\partial x_{l+1})^2}` over every value of the
    sampled steps; ``shape``: the block output's shape without the batch dimension.
    """

    depth: int
    shape: list[int]
    grad_mean_square: float
    samples: int


@dataclass
class MonitorStats:
    """Everything the monitor measured, as plain data."""

    schema_version: int
    steps: int
    sampled_steps: int
    model_training_steps: int
    activations: dict[str, ActivationStats]
    layers: dict[str, LayerOutputStats]
    params: dict[str, ParamStats]
    symmetry: dict[str, SymmetryStats]
    batchnorm: dict[str, BatchNormStats]
    inputs: InputStats | None
    loss: LossStats | None
    nonfinite: NonFinite | None
    windows: list[Window]
    optimizer: dict | None
    #: what the monitor could not see, ``{what: why}`` (a compiled graph, an optimizer it could not hook)
    not_checked: dict[str, str] = field(default_factory=dict)
    #: train/eval mode of the forwards before each optimizer step (None: nothing recorded)
    mode: ModeStats | None = None
    #: the training loop (:mod:`~impediments.monitor.loop`); None in documents written before it existed
    loop: LoopStats | None = None
    #: per nn.LSTM/GRU/RNN, its gradient through time (empty without recurrent modules)
    recurrent: dict[str, RecurrentStats] = field(default_factory=dict)
    #: per residual block (the output of ``x + F(x)``), the gradient along the stream; empty without them
    residual_stream: dict[str, ResidualStreamStats] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Nested plain dict (JSON-ready apart from non-finite floats)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MonitorStats":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: if ``schema_version`` is not the supported one.
        """
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported monitor schema_version {version!r}; supported: [{SCHEMA_VERSION}]")

        def moments(m):
            return MomentStats(**m)

        def activation(a):
            a = dict(a)
            a["output"], a["input"] = moments(a["output"]), moments(a["input"])
            a["histogram"] = Histogram(**a["histogram"])
            return ActivationStats(**a)

        def layer(x):
            x = dict(x)
            x["output"] = moments(x["output"])
            return LayerOutputStats(**x)

        return cls(
            schema_version=version, steps=d["steps"], sampled_steps=d["sampled_steps"],
            model_training_steps=d["model_training_steps"],
            activations={k: activation(v) for k, v in d["activations"].items()},
            layers={k: layer(v) for k, v in d["layers"].items()},
            params={k: ParamStats(**v) for k, v in d["params"].items()},
            symmetry={k: SymmetryStats(**v) for k, v in d["symmetry"].items()},
            batchnorm={k: BatchNormStats(**v) for k, v in d["batchnorm"].items()},
            inputs=InputStats(**d["inputs"]) if d.get("inputs") else None,
            loss=LossStats(**d["loss"]) if d.get("loss") else None,
            nonfinite=NonFinite(**d["nonfinite"]) if d.get("nonfinite") else None,
            windows=[Window(**w) for w in d["windows"]],
            optimizer=d.get("optimizer"),
            not_checked=dict(d.get("not_checked") or {}),
            mode=ModeStats(**d["mode"]) if d.get("mode") else None,
            loop=LoopStats.from_dict(d["loop"]) if d.get("loop") else None,
            recurrent={k: RecurrentStats(**v) for k, v in (d.get("recurrent") or {}).items()},
            residual_stream={k: ResidualStreamStats(**v) for k, v in (d.get("residual_stream") or {}).items()},
        )
