"""The live doctor: the playground's dashboard fed by a monitor on the user's own training loop.

``watch(model, optimizer=opt, live=True)`` (or ``mon.serve()`` inside the ``with`` block) starts a
local dashboard and attaches a :class:`LiveFeed`; nothing else in the loop changes. The feed
follows the monitor's sampled steps: before the first forward that follows a newly sampled step
(so that step's backward, optimizer step and loss are recorded) it reads ``mon.stats()`` and the
doctor's :func:`~impediments.doctor.diagnose` and publishes them.

Cost bound: a publication costs one ``mon.stats()`` (tens of ms on a 10-layer MLP, measured), so
the feed waits at least :data:`COST_FACTOR` times the last publication's cost (and at least
:data:`MIN_INTERVAL_S`) before the next one: the dashboard adds at most ``1/COST_FACTOR`` (5 %)
to the training time on top of the monitor's own overhead. The last state is published when the
monitor closes; the server keeps serving it until :meth:`LiveFeed.close` or the process ends.
"""
from __future__ import annotations

import time

from impediments.doctor import diagnose
from impediments.playground.server import DashboardServer
from impediments.playground.snapshot import monitor_view
from impediments.monitor.hooks.portable import PortableHook

MIN_INTERVAL_S = 0.2
COST_FACTOR = 20.0


class LiveFeed:
    """Publishes a monitor's statistics and findings to a :class:`DashboardServer` in ``live`` mode."""

    def __init__(self, monitor, model, server: DashboardServer, *, label: str = "your model") -> None:
        self.monitor, self.server, self.label = monitor, server, label
        self._model = model
        self._handle = None
        self._last_samples, self._next_time = -1, 0.0
        self.published = 0
        self.training = False

    @property
    def url(self) -> str:
        return self.server.url

    def attach(self) -> "LiveFeed":
        # prepend: runs before the monitor arms its interception for the coming forward
        self._handle = self._model.register_forward_pre_hook(PortableHook(self._before_forward), prepend=True)
        self.training = True
        return self

    def _before_forward(self, module, args) -> None:
        if not module.training or self.monitor.sampled_steps == self._last_samples:
            return
        if time.monotonic() >= self._next_time:
            self.publish()

    def publish(self) -> None:
        """Read the monitor and the doctor now and send the result to every open page."""
        start = time.monotonic()
        stats = self.monitor.stats()
        view = monitor_view(stats, diagnose(stats), histograms=True)
        view.update(label=self.label, status="training" if self.training else "done", steps=None, note="")
        self.published += 1
        self.server.broadcaster.publish("state", {"seq": self.published, "training": self.training,
                                                  "time": time.time(), "runs": [view]})
        self._last_samples = self.monitor.sampled_steps
        cost = time.monotonic() - start
        self._next_time = time.monotonic() + max(MIN_INTERVAL_S, COST_FACTOR * cost)

    def detach(self) -> None:
        """Remove the hook and publish the final state (the monitor calls this when it closes)."""
        if self._handle is None:
            return
        self._handle.remove()
        self._handle = None
        self.training = False
        self.publish()
        self._model = None

    def close(self) -> None:
        """Detach and stop the server."""
        self.detach()
        self.server.close()


def start_live_server(*, host: str = "127.0.0.1", port: int = 0, allow_public: bool = False,
                      title: str = "impediments live doctor", announce: bool = True) -> DashboardServer:
    """Start a live-mode dashboard; with ``announce``, print its URL on its own stdout line."""
    server = DashboardServer("live", host=host, port=port, allow_public=allow_public, title=title).start()
    if announce:
        print(server.url, flush=True)
    return server


def attach_live(monitor, model, live) -> LiveFeed:
    """Attach a feed for ``watch(..., live=...)``: ``True`` starts a server; a server is used as is."""
    if live is not True and not isinstance(live, DashboardServer):
        raise TypeError(f"live must be True, False or a DashboardServer (start_live_server()); got {live!r}")
    server = live if isinstance(live, DashboardServer) else start_live_server()
    return LiveFeed(monitor, model, server).attach()
