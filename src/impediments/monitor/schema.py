"""Plain-data schema of the monitor's statistics (what ``Monitor.stats()`` returns).

Every value is a Python number, list or dict: detached, on the host, produced only when statistics
are read. Each dataclass is defined beside the probe that fills it (``ActivationStats`` in
:mod:`~impediments.monitor.probes.activations`, ``BatchNormStats`` in
:mod:`~impediments.monitor.probes.batchnorm`, ...); this module gathers them into
:class:`MonitorStats`, the one document the doctor reads. Fields may be added, never renamed.
``SCHEMA_VERSION`` is bumped on any incompatible change and checked by ``from_dict``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from impediments.monitor.probes.activations import ActivationStats
from impediments.monitor.probes.batchnorm import BatchNormStats
from impediments.monitor.probes.inputs import InputStats
from impediments.monitor.probes.layers import LayerOutputStats
from impediments.monitor.probes.loop.loss_calls import LossCallStats
from impediments.monitor.probes.loop.probe import LoopParamStats, LoopStats
from impediments.monitor.probes.loss import LossStats
from impediments.monitor.probes.mode import ModeStats
from impediments.monitor.probes.nonfinite import NonFinite
from impediments.monitor.probes.output import OutputStats
from impediments.monitor.probes.params import ParamStats
from impediments.monitor.probes.recurrent.probe import RecurrentStats
from impediments.monitor.probes.residual import ResidualStreamStats
from impediments.monitor.probes.symmetry import SymmetryStats
from impediments.monitor.state.histogram import Histogram
from impediments.monitor.state.moments import MomentStats

SCHEMA_NAME = "impediments.monitor.stats"
SCHEMA_VERSION = 1


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
    #: the model's output head: its producer, width, constancy (None: no sampled training forward)
    output: OutputStats | None = None

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
            if a.get("linear_histogram") is not None:
                a["linear_histogram"] = Histogram(**a["linear_histogram"])
            return ActivationStats(**a)

        def layer(x):
            x = dict(x)
            x["output"] = moments(x["output"])
            for key in ("input_at_init", "output_at_init", "weight_at_init"):
                if x.get(key) is not None:
                    x[key] = moments(x[key])
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
            output=OutputStats(**d["output"]) if d.get("output") else None,
        )


__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "ActivationStats", "BatchNormStats", "Histogram", "InputStats",
           "LayerOutputStats", "LoopParamStats", "LoopStats", "LossCallStats", "LossStats", "ModeStats",
           "MomentStats", "MonitorStats", "NonFinite", "OutputStats", "ParamStats", "RecurrentStats",
           "ResidualStreamStats", "SymmetryStats", "Window"]
