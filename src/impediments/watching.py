"""``impediments.watch``: the monitor, the doctor's diagnosis of it, and its live view, composed.

The monitor (:mod:`impediments.monitor`) measures and the doctor (:mod:`impediments.doctor`) judges;
neither imports the other's users. This module sits above both and above the playground's live view,
so that the one call a user writes, ``with imp.watch(model, optimizer=opt) as mon:``, gives a monitor
whose :meth:`Watch.report` diagnoses it and whose :meth:`Watch.serve` shows it live.
"""
from __future__ import annotations

from torch import nn

from impediments.monitor import Monitor
from impediments.monitor.state.windows import DEFAULT_CAPACITY


class Watch(Monitor):
    """A :class:`~impediments.monitor.Monitor` with the doctor's report and the live view (see :func:`watch`)."""

    def __init__(self, model: nn.Module, optimizer=None, every=None, include=None,
                 windows: int = DEFAULT_CAPACITY, live=False, **framework) -> None:
        super().__init__(model, optimizer=optimizer, every=every, include=include, windows=windows, **framework)
        if isinstance(live, str) and live != "notebook":
            raise ValueError(f"live must be True, False, 'notebook' or a server from start_live_server(); got {live!r}")
        self._live, self._live_feed = live, None

    def __enter__(self) -> "Watch":
        super().__enter__()
        if self._live == "notebook":
            self.display()
        elif self._live:
            self.serve(self._live)
        return self

    def close(self) -> None:
        """Publish the final state to a live view, then remove every hook (idempotent)."""
        if self._live_feed is not None:       # publishes the final state while the statistics are whole
            self._live_feed.detach()
            self._live_feed = None
        super().close()

    def report(self, thresholds=None):
        """The doctor's diagnosis of :meth:`stats` (``impediments.doctor.diagnose``); under
        ``torch.distributed``, on rank 0 only (``None`` elsewhere: call :meth:`sync` first)."""
        from impediments.doctor import diagnose
        from impediments.monitor.distributed import is_reporting_rank

        return diagnose(self.stats(), thresholds) if is_reporting_rank() else None

    def display(self):
        """Show this monitor live in the notebook: one output area, redrawn in place at the sampled steps,
        no server (inside the ``with`` block; ``watch(..., live="notebook")`` calls it). Returns the
        :class:`~impediments.report.display.NotebookFeed` (``.updates``, ``.cost_s``); its cost bound, at most
        5 % of the training time as the browser feed's, is in :mod:`impediments.report.display`.

        Raises:
            RuntimeError: outside the ``with`` block, or outside IPython.
        """
        from impediments.report.display import NotebookFeed

        if self.ctx.model is None:
            raise RuntimeError("mon.display() needs an active monitor: call it inside `with watch(...) as mon:`")
        if self._live_feed is None:
            try:
                self._live_feed = NotebookFeed(self, self.ctx.model).attach()
            except ImportError:
                raise RuntimeError("mon.display() / live='notebook' needs IPython: pip install "
                                   "'impediments[notebook]', or use live=True for the browser") from None
        return self._live_feed

    def serve(self, server=True):
        """Show this monitor live in the browser (inside the ``with`` block; the URL is printed).

        ``server``: ``True`` starts a local dashboard on a free port; or pass one from
        ``impediments.playground.live.start_live_server(port=...)``. Returns the
        :class:`~impediments.playground.live.LiveFeed` (``.url``; ``.close()`` stops the server).
        The page follows the sampled steps; see :mod:`impediments.playground.live` for its cost bound.

        Raises:
            RuntimeError: outside the ``with`` block.
        """
        from impediments.playground.live import attach_live

        if self.ctx.model is None:
            raise RuntimeError("mon.serve() needs an active monitor: call it inside `with watch(...) as mon:`")
        if self._live_feed is None:
            self._live_feed = attach_live(self, self.ctx.model, server)
        return self._live_feed


def watch(model: nn.Module, optimizer=None, every=None, include=None, windows: int = DEFAULT_CAPACITY,
          live=False) -> Watch:
    """Watch ``model`` while it trains; use as ``with watch(model, optimizer=opt) as mon: ...``.

    Args:
        model: any ``nn.Module``; only forwards in training mode are recorded.
        optimizer: counts steps (its step hooks) and enables gradient/update statistics cheaply;
            without it, steps are training-mode forwards of ``model`` and gradients come from
            per-parameter post-accumulate hooks.
        every: ``None`` for the default schedule, ``k`` for every ``k``-th step, or ``step -> bool``
            (:mod:`~impediments.monitor.schedule`; ``every=1`` records the dense statistics at every
            step and the window statistics at the default schedule's pace).
        include: module-name prefixes (or ``name -> bool``) to watch; default all.
        windows: the most time windows kept (even, >= 2).
        live: ``True`` to show the statistics and findings live in the browser while it trains
            (:meth:`Watch.serve`), a server from ``impediments.playground.live.start_live_server``, or
            ``"notebook"`` to redraw one output area of a Jupyter notebook in place (:meth:`Watch.display`).

    Returns:
        A :class:`Watch`; hooks exist only inside the ``with`` block. The loss is recorded with
        ``mon.record_loss(loss)``, or, without any such call, from each step's first ``loss.backward()``.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: for a bad ``every`` or ``windows``.
    """
    return Watch(model, optimizer=optimizer, every=every, include=include, windows=windows, live=live)
