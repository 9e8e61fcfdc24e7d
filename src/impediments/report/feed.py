"""The live feed: a monitor's statistics and the doctor's findings, shown while the model trains.

Two views show a model live, and both follow the monitor the same way: the notebook's output area
(:class:`~impediments.report.display.NotebookFeed`, ``watch(model, live="notebook")``) and the browser
dashboard (:class:`~impediments.playground.live.LiveFeed`, ``watch(model, live=True)``). :class:`Feed` is
what they share; a view only says how it shows one update (:meth:`Feed.show`).

When to update. The feed puts one forward pre-hook on the model (a
:class:`~impediments.monitor.hooks.portable.PortableHook`, so a checkpoint taken inside ``watch()``
pickles without the feed). Before the first training-mode forward that follows a newly sampled step (so
that step's backward, optimizer step and loss are recorded) it reads ``monitor.stats()``, runs the
doctor's :func:`~impediments.doctor.diagnose` and hands both to :meth:`Feed.show`. The hook is put first
(``prepend``), before the monitor arms its interception for the coming forward.

Cost bound. An update costs ``c`` seconds: one ``monitor.stats()`` (tens of ms on a 10-layer MLP), one
``diagnose`` and the view's formatting. The next update waits at least
``max(MIN_INTERVAL_S, COST_FACTOR · c)``, so over any stretch of training the updates take at most
``1 / COST_FACTOR`` (5 %) of the time, on top of the monitor's own overhead:

.. math::

    \\frac{\\sum_k c_k}{T} \\le \\frac{\\sum_k c_k}{\\sum_k \\mathrm{COST\\_FACTOR} \\cdot c_k}
    = \\frac{1}{\\mathrm{COST\\_FACTOR}}

(every update but the last is followed by its wait). :meth:`Feed.detach` (the monitor calls it when it
closes) removes the hook and shows the final state once more.

Layering: this module sits in ``report`` (layer 5): it imports the doctor (layer 3) and the monitor's
portable hook (layer 2); the monitor never imports it (``watching``, layer 7, attaches the views).
"""
from __future__ import annotations

import time
from collections import deque

from impediments.monitor.hooks.portable import PortableHook

#: the shortest wait between two updates, seconds (a view redrawn faster than this is not read anyway)
MIN_INTERVAL_S = 0.2
#: the wait after an update is at least this many times its cost: updates take at most 1/COST_FACTOR of the time
COST_FACTOR = 20.0


class Feed:
    """Shows a monitor's statistics and findings at its sampled steps, within the cost bound above.

    Subclasses implement :meth:`show`. Attributes a caller reads: ``updates`` (how many were shown),
    ``training`` (False once detached), ``cost_s`` (seconds spent in all updates), ``last_cost_s`` and
    ``recent_costs`` (the last two updates').

    Args:
        monitor: the :class:`~impediments.monitor.Monitor` whose ``stats()`` and ``sampled_steps`` are read.
        model: the watched model (the hook goes on it).
    """

    def __init__(self, monitor, model) -> None:
        self.monitor, self._model = monitor, model
        self._handle = None
        self._last_samples, self._next_time = -1, 0.0
        self.updates, self.training, self.cost_s, self.last_cost_s = 0, False, 0.0, 0.0
        self.recent_costs: deque[float] = deque(maxlen=2)   # the last two updates' costs (bounded, not per step)

    def show(self, stats, report) -> None:
        """Show one update: ``stats`` (:class:`~impediments.monitor.schema.MonitorStats`) and ``report``
        (the doctor's :class:`~impediments.doctor.Report` of it). ``self.updates`` already counts it."""
        raise NotImplementedError

    def attach(self) -> "Feed":
        """Put the hook on the model; returns ``self``."""
        self._handle = self._model.register_forward_pre_hook(PortableHook(self._before_forward), prepend=True)
        self.training = True
        return self

    def _before_forward(self, module, args) -> None:
        if not module.training or self.monitor.sampled_steps == self._last_samples:
            return
        if time.monotonic() >= self._next_time:
            self.update()

    def update(self) -> None:
        """Read the monitor and the doctor now and show them; schedule the next update (the cost bound)."""
        from impediments.doctor import diagnose

        start = time.monotonic()
        stats = self.monitor.stats()
        self.updates += 1
        self.show(stats, diagnose(stats))
        self._last_samples = self.monitor.sampled_steps
        cost = time.monotonic() - start
        self.cost_s += cost
        self.last_cost_s = cost
        self.recent_costs.append(cost)
        self._next_time = time.monotonic() + max(MIN_INTERVAL_S, COST_FACTOR * cost)

    def detach(self) -> None:
        """Remove the hook and show the final state (the monitor calls this when it closes; idempotent)."""
        if self._handle is None:
            return
        self._handle.remove()
        self._handle = None
        self.training = False
        self.update()
        self._model = None
