"""What every probe is, and the small context it is given instead of the monitor.

A *probe* measures one concept (activations, layer outputs, BatchNorm, parameters, ...) and holds,
in its one file:

* its fields, declared once as :class:`~impediments.monitor.state.bag.Field` class attributes (name,
  merge rule, named columns), recorded into the bag ``state.bag(probe.key, name)`` of the current
  window;
* its hooks (what it registers on ``attach`` and removes on ``detach``), or the interception callbacks
  the monitor dispatches to it;
* its plain-data ``meta`` (names, kinds, shapes: host values only), which ``merge_meta`` folds across
  processes;
* its part of ``stats()`` (:meth:`Probe.stats`, and :meth:`Probe.window` for one time window), and the
  dataclass of :class:`~impediments.monitor.schema.MonitorStats` it fills.

A probe never sees the monitor: it gets a :class:`Context` (the step, whether it is sampled or full,
the model, the windows, the first-non-finite tracker, the shared scratch buffers and the trace of the
current forward). The monitor only dispatches (torchmetrics' ``Metric.add_state``; Cockpit's one
quantity per file).
"""
from __future__ import annotations

import torch
from torch import nn

from impediments.monitor.state.windows import State, Windows


class Scratch:
    """Reusable full-size temporaries (``like(x)``), released by ``clear()``.

    On CPU a fresh large tensor is a fresh ``mmap`` whose pages fault on first touch, and freeing it
    makes glibc trim the heap that training itself reuses; that costs more than the arithmetic done
    in it (measured: a sampled CNN step 2x slower). One buffer per dtype and device, as large as the
    largest tensor reduced, serves every reduction for as long as the monitor is open: the price is
    that much memory.
    """

    def __init__(self) -> None:
        self._buf: dict = {}
        self._views: dict = {}

    def like(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape, x.dtype, x.get_device())
        view = self._views.get(key)
        if view is not None:
            return view
        dev = (key[1], key[2])
        buf = self._buf.get(dev)
        if buf is None or buf.numel() < x.numel():
            buf = self._buf[dev] = torch.empty(x.numel(), dtype=x.dtype, device=x.device)
            self._views = {k: v for k, v in self._views.items() if (k[1], k[2]) != dev}
        if len(self._views) >= 256:      # shapes that vary per step (sequence lengths): stay bounded
            self._views.clear()
        view = self._views[key] = buf[: x.numel()].view(x.shape)
        return view

    def clear(self) -> None:
        self._buf.clear()
        self._views.clear()


class Context:
    """What a probe may read and write besides its own fields: the run's counters, the current
    forward, the shared resources. One per monitor; probes keep a reference to it.

    Attributes:
        model: the watched module as the user passed it (None once the monitor closed).
        module: the module it wraps when it is a ``torch.compile`` wrapper, else ``model``.
        schedule / full_schedule: which steps are sampled, and which of those record the window
            statistics too (:mod:`~impediments.monitor.schedule`).
        windows: the time windows of bags (:class:`~impediments.monitor.state.windows.Windows`).
        nonfinite: the first-NaN/Inf tracker every probe reports to
            (:class:`~impediments.monitor.probes.nonfinite.FirstNonFinite`).
        steps: optimizer steps taken (or training forwards, without an optimizer).
        sampled_steps / full_steps / training_forwards: counters of the run.
        step / sampled / full: the step of the current training forward, and whether it is sampled
            and full.
        last_leaf / last_out / last_moments: the last leaf module of the current sampled forward, its
            output, and that output's moments when a probe computed them (what fed the next module).
        scratch / hist_queue: reusable temporaries; histogram subsamples counted at the end of a forward.
        not_checked: ``{what: why}`` a probe could not see (shown under "not checked").
    """

    def __init__(self, model: nn.Module, module: nn.Module, schedule, full_schedule, windows: Windows,
                 nonfinite, include=None) -> None:
        self.model, self.module = model, module
        self.schedule, self.full_schedule = schedule, full_schedule
        self.windows, self.nonfinite = windows, nonfinite
        self._include = include
        self.steps = self.sampled_steps = self.full_steps = self.training_forwards = 0
        self.step, self.sampled, self.full = 0, False, False
        self.last_leaf: nn.Module | None = None
        self.last_out = self.last_moments = None
        #: tensor parallelism (:mod:`~impediments.monitor.sharding`): ``(local output, unit offset, global
        #: units)`` of the last Colwise layer, and whether this rank repeats another's activations
        self.last_unit_shard: tuple | None = None
        self.tensor_parallel_replica = False
        self.scratch = Scratch()
        self.hist_queue: list = []
        self.not_checked: dict[str, str] = {}
        #: called at each optimizer step (or backward, without an optimizer): the mode probe's count
        self.note_step = lambda: None

    def included(self, name: str) -> bool:
        """Whether module ``name`` is watched (the ``include`` argument of ``watch``)."""
        inc = self._include
        if inc is None:
            return True
        if callable(inc):
            return bool(inc(name))
        return any(name == p or name.startswith(p + ".") for p in inc) or name == ""

    def state(self) -> State:
        """The window state of the current step."""
        return self.windows.at(self.step)

    def forget_forward(self) -> None:
        """Drop the trace of a finished forward (no tensor outlives it)."""
        self.last_leaf = self.last_out = self.last_moments = self.last_unit_shard = None

    def close(self) -> None:
        """Drop every reference to the model and to full-size buffers."""
        self.model = self.module = None
        self.forget_forward()
        self.scratch.clear()


class Probe:
    """Base of the monitor's probes (see the module docstring). Subclasses set :attr:`key` and
    override what they need; every method has a neutral default."""

    #: the probe's bags in each window state (``state.bag(key, name)``) and its part of the meta
    key: str = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.meta: dict = {}

    def attach(self) -> list:
        """Register the probe's own hooks; returns their handles (removed by the monitor)."""
        return []

    def detach(self) -> None:
        """Drop references to the model (hooks are already removed)."""

    def stats(self, total: State, windows: list) -> dict:
        """The probe's fields of :class:`~impediments.monitor.schema.MonitorStats` (host values)."""
        return {}

    def window(self, st: State, w) -> None:
        """Fill the probe's fields of one :class:`~impediments.monitor.schema.Window` from its state."""

    def bags(self, st: State):
        """``(name, bag)`` of this probe in one window state."""
        key = self.key
        return ((name, b) for (k, name), b in st.items() if k == key)

    def load_meta(self, meta: dict) -> None:
        """Restore :attr:`meta` from a state dict (statistics only)."""
        self.meta = meta

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        """Fold another process's meta of this probe into ``mine`` (default: keep names not yet known)."""
        for name, m in other.items():
            mine.setdefault(name, m)
