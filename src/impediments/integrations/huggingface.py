"""Hugging Face Trainer: ``Trainer(..., callbacks=[impediments.integrations.huggingface.Doctor()])``.

``pip install 'impediments[transformers]'``. The callback

* watches the model and optimizer from the callback kwargs at ``on_train_begin``; the optimizer is
  Accelerate's ``AcceleratedOptimizer``, which the monitor unwraps (``.optimizer``), so gradients are
  read in the torch optimizer's step pre-hook, before ``zero_grad`` (at ``on_step_end`` they are gone);
* records each step's loss from the model output (``outputs.loss``, present when labels are given);
* at ``on_log`` adds the scalar summaries (:func:`~impediments.integrations._common.summaries`) to
  ``logs``, so every reporter the Trainer has (TensorBoard, W&B, the console) receives them;
* at ``on_train_end`` merges the ranks (``Monitor.sync``, all ranks) and, on world process zero, prints
  the report and writes ``report.html`` / ``report.json`` into ``args.output_dir`` (or ``out_dir``);
  ``.report`` keeps it (None elsewhere). With ``stop_on="error"`` it sets ``control.should_training_stop``
  at the first error-severity finding (checked at each ``on_log``).
"""
from __future__ import annotations

from impediments.integrations._common import describe, finish, first_error, init_callback, lazy_doctor, summaries


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("the Hugging Face callback needs transformers: "
                          "pip install 'impediments[transformers]'") from exc
    return transformers


def _make_doctor(callback_base):
    class Doctor(callback_base):
        """Diagnose a Hugging Face ``Trainer`` run (see :mod:`impediments.integrations.huggingface`).

        Args:
            every: the monitor's schedule (None: default; ``k``; or ``step -> bool``).
            out_dir: folder for the report files (None: ``args.output_dir``; ``False``: write nothing).
            stop_on: None, or ``"error"``.
            thresholds: doctor threshold overrides.
            echo: print the report at the end on world process zero.

        Raises:
            ValueError: for an unknown ``stop_on``.
        """

        def __init__(self, every=None, out_dir=None, stop_on=None, thresholds=None, echo: bool = True) -> None:
            init_callback(self, every, out_dir, stop_on, thresholds, echo)
            self._loss_hook = None

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            from impediments.watching import watch

            self.report, self.stopped_by = None, None
            self.monitor = watch(model, optimizer=optimizer, every=self.every).__enter__()
            self._loss_hook = model.register_forward_hook(self._record_loss)

        def _record_loss(self, module, args, out):
            loss = getattr(out, "loss", None)
            if loss is None and isinstance(out, dict):
                loss = out.get("loss")
            if module.training and loss is not None and self.monitor is not None:
                self.monitor.record_loss(loss)

        def on_log(self, args, state, control, logs=None, **kwargs):
            mon = self.monitor
            if mon is None or logs is None:
                return
            from impediments.doctor import diagnose

            stats = mon.stats()
            report = diagnose(stats, self.thresholds)
            logs.update(summaries(stats, report))
            err = first_error(report) if self.stop_on == "error" else None
            if err is not None:
                self.stopped_by = err
                control.should_training_stop = True
                if state.is_world_process_zero:
                    print(f"impediments: stopping at step {state.global_step}: {describe(err)}")

        def on_train_end(self, args, state, control, **kwargs):
            mon, self.monitor = self.monitor, None
            self._remove_loss_hook()
            if mon is None:
                return
            folder = args.output_dir if self.out_dir is None else self.out_dir
            self.report = finish(mon, folder or None, title="impediments doctor (Hugging Face Trainer)",
                                 echo=print if self.echo else None, thresholds=self.thresholds)

        def _remove_loss_hook(self) -> None:
            if self._loss_hook is not None:
                self._loss_hook.remove()
                self._loss_hook = None

        def close(self) -> None:
            """Remove every hook without reporting (after an exception in ``trainer.train()``)."""
            mon, self.monitor = self.monitor, None
            self._remove_loss_hook()
            if mon is not None:
                mon.close()

    return Doctor


__getattr__ = lazy_doctor(__name__, lambda: _make_doctor(_transformers().TrainerCallback))
