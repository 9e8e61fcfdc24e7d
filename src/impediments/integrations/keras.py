"""Keras 3 on the torch backend: ``model.fit(..., callbacks=[impediments.integrations.keras.Doctor()])``.

``pip install 'impediments[keras]'`` and ``KERAS_BACKEND=torch``. A Keras model on that backend is an
``nn.Module``, but ``named_modules()`` hides its layers. The callback therefore hands the monitor

* the layers of ``model._flatten_layers(include_self=False)`` (their forward hooks fire), named by
  ``layer.path`` relative to the model (``dense_1``, ``batch_normalization``), so findings name
  Keras layers, and a functional activation inside a layer is ``dense_1/sigmoid#0``;
* the trainable variables as ``{layer path . variable name: v.value}`` (``dense_1.kernel``).

The optimizer is a Keras optimizer, not a torch one, so the monitor counts a step per training
forward and reads each gradient when backward has accumulated it (post-accumulate-grad hooks on
``v.value``, equal to ``v.value.grad`` at ``on_train_batch_end``: Keras zeroes gradients only at the
next step); update-to-weight ratios are not measured (shown under "not checked"). The loss of each
step comes from ``model.compute_loss`` (wrapped on the instance during ``fit``, restored after).
Keras ``BatchNormalization`` layers are counted through :meth:`Monitor.record_batchnorm_forward`: one
with ``trainable=False`` normalises with its moving statistics in training (Keras's documented
"frozen" state), reported as ``bn_inference_mode_in_training`` at info severity.

``jit_compile=True`` compiles Keras's train step with ``torch.compile`` around the hooks: the callback
warns, since what the graph hides is then not seen.

Not handled: Keras does not toggle torch's ``module.training``, so forwards of ``validation_data`` during
``fit`` count as training steps (fit without validation data to diagnose, or run it separately); after
an exception inside ``fit`` call :meth:`Doctor.close` (Keras has no exception callback).
"""
from __future__ import annotations

import warnings

from impediments.integrations._common import describe, finish, first_error, init_callback, lazy_doctor, summaries

#: the not-checked entry for a Keras optimizer
KERAS_OPTIMIZER_NOTE = ("Keras optimizers have no torch step hooks: steps are counted by training forwards "
                        "and update-to-weight ratios are not measured")


def _keras():
    try:
        import keras
    except ImportError as exc:
        raise ImportError("the Keras callback needs Keras 3: pip install 'impediments[keras]'") from exc
    return keras


def layer_names(model) -> dict:
    """``{path relative to the model: layer}`` for every layer with a path (``dense_1``, ``block/conv``)."""
    prefix = f"{model.name}/"
    out = {}
    for layer in model._flatten_layers(include_self=False):
        path = layer.path
        if path:
            out[path[len(prefix):] if path.startswith(prefix) else path] = layer
    return out


def parameter_names(model) -> dict:
    """``{"layer.variable": torch parameter}`` of the trainable variables (``dense_1.kernel``)."""
    prefix = f"{model.name}/"
    out = {}
    for v in model.trainable_variables:
        path = v.path[len(prefix):] if v.path.startswith(prefix) else v.path
        layer, _, var = path.rpartition("/")
        out[f"{layer}.{var}" if layer else var] = v.value
    return out


def _make_doctor(callback_base):
    class Doctor(callback_base):
        """Diagnose a Keras 3 ``fit`` on the torch backend (see :mod:`impediments.integrations.keras`).

        Args:
            every: the monitor's schedule (None: default; ``k``; or ``step -> bool``).
            out_dir: folder for ``report.html`` / ``report.json`` (None: write nothing).
            stop_on: None, or ``"error"`` (sets ``model.stop_training`` at the first error finding,
                checked every ``check_every`` batches).
            check_every: batches between checks for ``stop_on``.
            thresholds: doctor threshold overrides.
            echo: print the report at the end of ``fit``.

        Raises:
            ValueError: for an unknown ``stop_on``.
        """

        def __init__(self, every=None, out_dir=None, stop_on=None, check_every: int = 50, thresholds=None,
                     echo: bool = True) -> None:
            super().__init__()
            init_callback(self, every, out_dir, stop_on, thresholds, echo)
            self.check_every = check_every
            self._handles: list = []
            self._compute_loss = None

        def on_train_begin(self, logs=None):
            from impediments.watching import Watch

            keras = _keras()
            model = self.model
            if keras.backend.backend() != "torch":
                raise RuntimeError(f"impediments.integrations.keras needs KERAS_BACKEND=torch; "
                                   f"received: backend={keras.backend.backend()!r}")
            if getattr(model, "jit_compile", False) is True:
                warnings.warn("impediments: model.compile(jit_compile=True) runs the train step through "
                              "torch.compile; activations inside the compiled graph may not be seen. "
                              "Compile with jit_compile=False to diagnose.", stacklevel=2)
            self.report, self.stopped_by = None, None
            layers = layer_names(model)
            mon = Watch(model, every=self.every, modules=layers, parameters=parameter_names(model)).__enter__()
            mon.ctx.not_checked["optimizer"] = KERAS_OPTIMIZER_NOTE
            bn = keras.layers.BatchNormalization
            self._handles = [layer.register_forward_pre_hook(self._batchnorm_hook(name, layer))
                             for name, layer in layers.items() if isinstance(layer, bn)]
            self.monitor = mon
            self._wrap_loss(model)

        def _batchnorm_hook(self, name, layer):
            def hook(module, args):
                mon = self.monitor
                if mon is None or not args or not hasattr(args[0], "shape") or len(args[0].shape) < 2:
                    return
                x = args[0]
                mon.record_batchnorm_forward(name, type(layer).__name__, running_statistics=not layer.trainable,
                                             frozen=not layer.trainable,
                                             values_per_channel=int(x.numel() // max(1, x.shape[layer.axis])))
            return hook

        def _wrap_loss(self, model):
            original = model.compute_loss

            def compute_loss(*args, **kwargs):
                loss = original(*args, **kwargs)
                if self.monitor is not None and kwargs.get("training", True):
                    self.monitor.record_loss(loss)
                return loss

            self._compute_loss = original
            model.compute_loss = compute_loss

        def _unwrap_loss(self):
            if self._compute_loss is not None and self.model is not None:
                if "compute_loss" in vars(self.model):
                    del self.model.compute_loss
            self._compute_loss = None

        def on_train_batch_end(self, batch, logs=None):
            if self.monitor is None or self.stop_on is None or (batch + 1) % self.check_every:
                return
            from impediments.doctor import diagnose

            err = first_error(diagnose(self.monitor.stats(), self.thresholds))
            if err is not None:
                self.stopped_by = err
                self.model.stop_training = True
                print(f"impediments: stopping at batch {batch}: {describe(err)}")

        def on_epoch_end(self, epoch, logs=None):
            if self.monitor is None or logs is None:
                return
            from impediments.doctor import diagnose

            stats = self.monitor.stats()
            logs.update(summaries(stats, diagnose(stats, self.thresholds)))

        def _close(self):
            for h in self._handles:
                h.remove()
            self._handles = []
            self._unwrap_loss()
            mon, self.monitor = self.monitor, None
            return mon

        def on_train_end(self, logs=None):
            mon = self._close()
            if mon is None:
                return
            self.report = finish(mon, self.out_dir, title="impediments doctor (Keras)",
                                 echo=print if self.echo else None, thresholds=self.thresholds)

        def close(self) -> None:
            """Remove every hook without reporting (after an exception in ``fit``)."""
            mon = self._close()
            if mon is not None:
                mon.close()

    return Doctor


__getattr__ = lazy_doctor(__name__, lambda: _make_doctor(_keras().callbacks.Callback))
