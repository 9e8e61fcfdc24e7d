"""Streaming per-layer statistics of any PyTorch model while it trains.

``with Monitor(model, optimizer=opt) as mon: ...`` then ``mon.stats()`` (a
:class:`~impediments.monitor.schema.MonitorStats`), ``mon.state_dict()``, ``mon.merge(other)``,
``mon.sync()`` (DDP) and ``mon.to_json(path)``. Users call :func:`impediments.watch`, which adds the
doctor's ``report()`` and the live view on top. Never imports matplotlib, the doctor or the playground.

Layout (dependencies run downwards only):

* :mod:`.monitor`: the :class:`Monitor`, which owns the probes and dispatches to them;
  :mod:`.schema`, :mod:`.schedule`, :mod:`.export`, :mod:`.distributed`;
* ``probes/``: one concept per file, each with its fields, hooks, statistics and dataclass
  (activations, layers, batchnorm, params, inputs, loss, mode, symmetry, nonfinite, residual,
  recurrent/, loop/), on :mod:`.probes.base`;
* ``hooks/``: seeing inside a forward (:mod:`.hooks.intercept`), ``torch.compile``
  (:mod:`.hooks.compiled`), hooks that travel with the model (:mod:`.hooks.portable`);
* ``state/``: mergeable accumulators (:mod:`.state.bag`, :mod:`.state.moments`,
  :mod:`.state.histogram`, :mod:`.state.windows`).
"""
from impediments.monitor import schema
from impediments.monitor.monitor import Monitor
from impediments.monitor.schedule import default_schedule
from impediments.monitor.state.histogram import HIST_EDGES

__all__ = ["HIST_EDGES", "Monitor", "default_schedule", "schema"]
