"""Overhead rows for ``benchmarks/overhead.py --frameworks``: torch.compile and the framework callbacks.

* compiled: the (a) MLP under ``torch.compile`` (inductor), ``watch()`` against none, interleaved in
  steady state (after the default schedule's eager first 10 steps); and compile time, the first 15
  steps of a fresh process with and without ``watch()`` (median of ``--compile-repeats`` pairs).
* Lightning / Hugging Face Trainer / Keras 3 (torch backend): the same MLP and batch trained for
  ``--fit-steps`` steps by the framework, with and without the framework's ``Doctor`` callback
  (default schedule; report written nowhere), timed from the framework's train-begin to train-end
  callback, pairs alternated, median ratio over ``--fit-repeats`` pairs.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from impediments import watch
from overhead import full_batch_steps

os.environ.setdefault("KERAS_BACKEND", "torch")


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def data(n=128):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)


# ----------------------------------------------------------------------------------------- compile
class CompiledRunner:
    def __init__(self, monitored: bool):
        self.model = torch.compile(mlp())
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.X, self.y = data()
        self.mon = watch(self.model, optimizer=self.opt).__enter__() if monitored else None
        self.steps = full_batch_steps(self.model, self.opt, self.X, self.y, self.mon)

    def run(self, steps):
        t = time.perf_counter()
        for _ in range(steps):
            next(self.steps)
        return (time.perf_counter() - t) / steps


def compiled_steady(repeats: int, steps: int):
    runners = {"compiled": CompiledRunner(False), "compiled + watch()": CompiledRunner(True)}
    for r in runners.values():
        r.run(12)                       # compile, and the monitor's eager first 10 steps
    times = {c: [] for c in runners}
    for _ in range(repeats):
        for c, r in runners.items():
            times[c].append(r.run(steps))
    ratios = [a / b for a, b in zip(times["compiled + watch()"], times["compiled"])]
    return statistics.median(ratios), min(ratios), max(ratios), 1e3 * statistics.median(times["compiled"])


_COMPILE_CODE = """
import time, sys, torch, torch.nn.functional as F
sys.path.insert(0, {here!r}); import frameworks as B
torch.set_num_threads({threads}); torch._inductor.config.force_disable_caches = True
r = B.CompiledRunner({monitored})
t = time.perf_counter(); r.run(15); print(time.perf_counter() - t)
"""


def compile_seconds(monitored: bool, threads: int) -> float:
    """Wall time of the first 15 steps (compilation included, inductor caches off) in a fresh process."""
    code = _COMPILE_CODE.format(here=os.path.dirname(os.path.abspath(__file__)), threads=threads, monitored=monitored)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def compile_time_ratio(repeats: int, threads: int):
    pairs = [(compile_seconds(True, threads), compile_seconds(False, threads)) for _ in range(repeats)]
    ratios = [a / b for a, b in pairs]
    return statistics.median(ratios), min(ratios), max(ratios), statistics.median(b for _, b in pairs)


# ----------------------------------------------------------------------------------------- frameworks
def _pairs(fit, repeats: int):
    fit(False, 20)                      # warm-up: imports, first allocations
    times = {False: [], True: []}
    for _ in range(repeats):
        for doctor in (False, True):
            times[doctor].append(fit(doctor, None))
    ratios = [a / b for a, b in zip(times[True], times[False])]
    return statistics.median(ratios), min(ratios), max(ratios), statistics.median(times[False])


def lightning_fit(steps: int):
    import pytorch_lightning as pl

    from impediments.integrations import lightning as L

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Clock(pl.Callback):
        def on_train_start(self, trainer, module):
            self.t = time.perf_counter()

        def on_train_end(self, trainer, module):
            self.seconds = time.perf_counter() - self.t

    X, y = data(128 * 10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=128)

    def fit(doctor: bool, n):
        clock = Clock()
        cbs = [clock] + ([L.Doctor(out_dir=False, echo=False)] if doctor else [])
        trainer = pl.Trainer(max_steps=n or steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, callbacks=cbs)
        trainer.fit(Lit(), loader)
        return clock.seconds / (n or steps)
    return fit


def huggingface_fit(steps: int):
    import transformers

    from impediments.integrations import huggingface as H

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"loss": F.cross_entropy(logits, labels), "logits": logits}

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            self.seconds = time.perf_counter() - self.t

    X, y = data(128 * 10)
    rows = [{"x": X[i], "labels": y[i]} for i in range(len(X))]

    def fit(doctor: bool, n):
        clock = Clock()
        args = transformers.TrainingArguments(output_dir="/tmp/impediments-bench-hf", max_steps=n or steps,
                                              per_device_train_batch_size=128, report_to=[], save_strategy="no",
                                              use_cpu=True, disable_tqdm=True, learning_rate=0.01,
                                              logging_strategy="no", optim="sgd")
        cbs = [clock] + ([H.Doctor(out_dir=False, echo=False)] if doctor else [])
        transformers.Trainer(model=Net(), args=args, train_dataset=rows, callbacks=cbs).train()
        return clock.seconds / (n or steps)
    return fit


def keras_fit(steps: int):
    import keras
    import numpy as np

    from impediments.integrations import keras as K

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.t

    X, y = data(128 * steps)
    X, y = X.numpy(), y.numpy().astype(np.int64)

    def fit(doctor: bool, n):
        n = n or steps
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(256, activation="relu"), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(optimizer=keras.optimizers.SGD(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        clock = Clock()
        cbs = [clock] + ([K.Doctor(echo=False)] if doctor else [])
        model.fit(X[:128 * n], y[:128 * n], batch_size=128, epochs=1, shuffle=False, verbose=0, callbacks=cbs)
        return clock.seconds / n
    return fit


FRAMEWORKS = {"Lightning": lightning_fit, "HF Trainer": huggingface_fit, "Keras 3 (torch)": keras_fit}


def framework_ratio(name: str, steps: int, repeats: int):
    return _pairs(FRAMEWORKS[name](steps), repeats)
