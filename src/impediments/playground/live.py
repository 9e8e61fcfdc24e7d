"""The live doctor: the playground's dashboard fed by a monitor on the user's own training loop.

``watch(model, optimizer=opt, live=True)`` (or ``mon.serve()`` inside the ``with`` block) starts a
local dashboard and attaches a :class:`LiveFeed`; nothing else in the loop changes. When the feed
updates (before the first forward after a newly sampled step) and the bound on its cost (at most
``1 / COST_FACTOR``, 5 %, of the training time on top of the monitor's own overhead) are the shared live
feed's, :class:`impediments.report.feed.Feed`, which the notebook view uses too; this module only
publishes each update to the page. The last state is published when the monitor closes; the server
keeps serving it until :meth:`LiveFeed.close` or the process ends.
"""
from __future__ import annotations

import time

from impediments.playground.server import DashboardServer
from impediments.playground.snapshot import monitor_view
from impediments.report.feed import Feed


class LiveFeed(Feed):
    """Publishes a monitor's statistics and findings to a :class:`DashboardServer` in ``live`` mode."""

    def __init__(self, monitor, model, server: DashboardServer, *, label: str = "your model") -> None:
        super().__init__(monitor, model)
        self.server, self.label = server, label

    @property
    def url(self) -> str:
        return self.server.url

    def show(self, stats, report) -> None:
        """Send the page's view of this update to every open page."""
        view = monitor_view(stats, report, histograms=True)
        view.update(label=self.label, status="training" if self.training else "done", steps=None, note="")
        self.server.broadcaster.publish("state", {"seq": self.updates, "training": self.training,
                                                  "time": time.time(), "runs": [view]})

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
