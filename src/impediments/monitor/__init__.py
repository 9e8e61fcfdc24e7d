"""Streaming per-layer statistics of any PyTorch model while it trains (issue 5).

``with watch(model, optimizer=opt) as mon: ...`` then ``mon.stats()`` (a
:class:`~impediments.monitor.schema.MonitorStats`), ``mon.report()``, ``mon.state_dict()``,
``mon.merge(other)``, ``mon.sync()`` (DDP) and ``mon.to_json(path)``. See :mod:`.watch` for the
cost model and :mod:`.schedule` for what is recorded when. Never imports matplotlib.
"""
from impediments.monitor import schema
from impediments.monitor.accumulators import HIST_EDGES
from impediments.monitor.schedule import default_schedule
from impediments.monitor.watch import Monitor, watch

__all__ = ["HIST_EDGES", "Monitor", "default_schedule", "schema", "watch"]
