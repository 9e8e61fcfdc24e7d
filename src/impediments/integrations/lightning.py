"""PyTorch Lightning: ``Trainer(callbacks=[impediments.integrations.lightning.Doctor()])``.

``pip install 'impediments[lightning]'`` (``pytorch-lightning``; the callback also subclasses
``lightning.pytorch.Callback`` when the unified ``lightning`` package is installed). The callback

* watches the ``LightningModule`` with the trainer's optimizer (Lightning's ``LightningOptimizer``
  wrapper is unwrapped by the monitor) on the monitor's schedule, and records each step's loss;
* every ``log_every_n_steps`` logs scalar summaries (dead and saturated fractions, gradient and update
  ratios, findings per severity: :func:`~impediments.integrations._common.summaries`) through
  ``trainer.loggers``;
* with ``stop_on="error"``, sets ``trainer.should_stop`` at the first error-severity finding (checked at
  the same cadence; Lightning reduces the decision over ranks) and says which finding;
* at fit end merges the statistics of every rank (``Monitor.sync``, on all ranks), then on global rank
  0 only prints the report and writes ``report.html`` and ``report.json`` into ``out_dir`` (default:
  ``trainer.log_dir``, else ``trainer.default_root_dir``); ``.report`` keeps it (None on other ranks);
* removes its hooks at fit end, on teardown and on exceptions.

Under ``strategy="ddp"`` Lightning calls ``training_step`` through the module's own ``__call__``, so
the monitor sees the step as one forward of the module (re-entrant calls of ``self(x)`` inside it are
part of that forward).
"""
from __future__ import annotations

from impediments.integrations._common import (describe, finish, first_error, init_callback, is_rank_zero,
                                              lazy_doctor, summaries)


def _callback_bases() -> tuple:
    """``Callback`` of each Lightning package installed: the Doctor subclasses all of them, so either
    package's ``Trainer`` accepts it (``pytorch_lightning`` and the unified ``lightning.pytorch``)."""
    import importlib

    bases = []
    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            bases.append(importlib.import_module(name).Callback)
        except ImportError:
            continue
    if not bases:
        raise ImportError("the Lightning callback needs PyTorch Lightning: pip install 'impediments[lightning]'")
    return tuple(bases)


def _make_doctor(callback_bases: tuple):
    class Doctor(*callback_bases):
        """Diagnose a Lightning fit (see :mod:`impediments.integrations.lightning`).

        Args:
            every: the monitor's schedule (None: default; ``k``; or ``step -> bool``).
            out_dir: folder for ``report.html`` / ``report.json`` (None: the trainer's log folder;
                ``False``: write nothing).
            stop_on: None, or ``"error"`` to stop at the first error-severity finding.
            thresholds: doctor threshold overrides (``{name: value}``).
            echo: print the report at fit end on rank 0.

        Raises:
            ValueError: for an unknown ``stop_on``.
        """

        def __init__(self, every=None, out_dir=None, stop_on=None, thresholds=None, echo: bool = True) -> None:
            super().__init__()
            init_callback(self, every, out_dir, stop_on, thresholds, echo)

        # ------------------------------------------------------------------ lifecycle
        def on_fit_start(self, trainer, pl_module) -> None:
            from impediments.watching import watch

            opt = trainer.optimizers[0] if trainer.optimizers else None
            self.report, self.stopped_by = None, None
            self.monitor = watch(pl_module, optimizer=opt, every=self.every).__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            mon = self.monitor
            if mon is None:
                return
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                mon.record_loss(loss)
            every = max(1, int(getattr(trainer, "log_every_n_steps", 50) or 50))
            if trainer.global_step % every:
                return
            if not trainer.loggers and self.stop_on is None:
                return
            from impediments.doctor import diagnose

            stats = mon.stats()
            report = diagnose(stats, self.thresholds)
            if is_rank_zero():
                scalars = summaries(stats, report)
                for logger in trainer.loggers:
                    logger.log_metrics(scalars, step=trainer.global_step)
            err = first_error(report) if self.stop_on == "error" else None
            if err is not None:
                self.stopped_by = err
                trainer.should_stop = True
                if is_rank_zero():
                    print(f"impediments: stopping at step {trainer.global_step}: {describe(err)}")

        def on_fit_end(self, trainer, pl_module) -> None:
            mon, self.monitor = self.monitor, None
            if mon is None:
                return
            folder = self.out_dir
            if folder is None:
                folder = trainer.log_dir or trainer.default_root_dir
            self.report = finish(mon, folder or None, title="impediments doctor (Lightning)",
                                 echo=print if self.echo else None, thresholds=self.thresholds)

        def _close(self) -> None:
            mon, self.monitor = self.monitor, None
            if mon is not None:
                mon.close()

        def on_exception(self, trainer, pl_module, exception) -> None:
            self._close()

        def teardown(self, trainer, pl_module, stage) -> None:
            self._close()

    return Doctor


__getattr__ = lazy_doctor(__name__, lambda: _make_doctor(_callback_bases()))
