"""See it live: the playground (the module's experiments on real PyTorch, in the browser) and the live doctor.

Layout::

    config.py    every control, its offered choices, validation, the URL fragment
    build.py     data, model, init and optimizer of a config (library code only)
    run.py       one run: training step, curves, histograms, monitor + doctor view
    session.py   the training thread: runs A and B, commands, updates
    remedies.py  doctor code -> the fix's remedies the page can apply, one at a time ("Apply")
    lessons.py   one preset per lesson of the module: what to look for, its notebook section
    links.py     experiment name -> playground setup and link
    capture.py   linear-binned activation histograms of one step (scoped hooks)
    snapshot.py  MonitorStats + Report -> what the page draws
    stream.py    bounded per-page queues (Server-Sent Events)
    server.py    http.server + SSE + JSON POSTs, local-only, validated
    live.py      the live doctor: a monitor's statistics streamed to the same page (report.feed's schedule)
    static/      index.html, app.js, style.css (vanilla JS, no build step, no network)

``impediments playground`` and ``impediments doctor SPEC.py --live`` are the commands;
``watch(model, optimizer=opt, live=True)`` or ``mon.serve()`` the library entry points.
"""
from impediments.playground.config import CHOICES, ConfigError, PlaygroundConfig, from_fragment, to_fragment, validate
from impediments.playground.lessons import LESSONS, lesson
from impediments.playground.links import EXPERIMENT_SETUPS, experiment_config, experiment_url
from impediments.playground.remedies import apply_remedy, remedy_changes, remedy_options

__all__ = ["CHOICES", "EXPERIMENT_SETUPS", "LESSONS", "ConfigError", "PlaygroundConfig", "apply_remedy",
           "experiment_config", "experiment_url", "from_fragment", "lesson", "remedy_changes", "remedy_options",
           "to_fragment", "validate", "serve_playground"]


def serve_playground(*, host: str = "127.0.0.1", port: int = 0, allow_public: bool = False):
    """Start the playground server and its training thread; returns the running ``DashboardServer``."""
    from impediments.playground.server import DashboardServer
    from impediments.playground.session import Session

    session = Session()
    server = DashboardServer("playground", host=host, port=port, allow_public=allow_public,
                             title="impediments playground", session=session)
    session.start()
    return server.start()
