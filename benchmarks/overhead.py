"""Overhead of the monitor on real training steps (issue 5), configurations interleaved.

Loops: (a) MLP 64-256-256-256-10 ReLU on digits, batch 128; (b) small CNN on 1x28x28, batch 64
(synthetic); (c) a small transformer block (d=64, 4 heads, 32 tokens, batch 32, functional GELU).
Configurations, each with its own copy of the model (same init) so hooks never leak across them:
plain; ``watch()`` (default schedule, entered once, measured in steady state after its warm-up);
``watch(every=1)``; a naive fastai-style collector (forward hooks on every leaf module recording
mean, std and a 40-bin histogram on the CPU at every step).

For each repeat, every configuration runs a block of ``--steps`` steps in turn; the ratio to plain
is taken per repeat and the median over repeats is reported. "state" is the memory held by the
collector's statistics after the run (the monitor's is bounded; the naive one grows with steps).

    python benchmarks/overhead.py [--repeats 5] [--steps 40] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from impediments.monitor import watch


class Block(nn.Module):
    """Pre-norm transformer block + linear head."""

    def __init__(self, d=64, heads=4, classes=10):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.fc1, self.fc2, self.head = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.Linear(d, classes)

    def forward(self, x):
        a = self.ln1(x)
        x = x + self.attn(a, a, a, need_weights=False)[0]
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return self.head(x.mean(1))


def loops():
    torch.manual_seed(0)
    try:
        import impediments as imp

        d = imp.load_dataset("digits")
        X, y = d.X_train[:128], d.y_train[:128]
    except Exception:  # pragma: no cover - no dataset: same shapes
        X, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    return {"(a) MLP": (mlp, X, y), "(b) CNN": (cnn, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
            "(c) transformer": (Block(), torch.randn(32, 32, 64), torch.randint(0, 10, (32,)))}


class Naive:
    """fastai-style: forward hooks on every leaf, mean/std/histc on the CPU at every step."""

    def __init__(self, model):
        self.stats, self.hooks = [], [m.register_forward_hook(self.hook) for m in model.modules()
                                      if next(m.children(), None) is None]

    def hook(self, m, a, o):
        if isinstance(o, torch.Tensor):
            c = o.detach().cpu().float()
            self.stats.append((c.mean().item(), c.std().item(), c.histc(40, -10, 10)))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        for h in self.hooks:
            h.remove()

    def nbytes(self):
        return sum(16 + h.numel() * 4 for _, _, h in self.stats)


class Runner:
    def __init__(self, config, model, X, y):
        self.model = copy.deepcopy(model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.X, self.y, self.config = X, y, config
        self.ctx = {"plain": None, "watch()": lambda: watch(self.model, optimizer=self.opt),
                    "watch(every=1)": lambda: watch(self.model, optimizer=self.opt, every=1),
                    "naive hooks": lambda: Naive(self.model)}[config]
        self.mon = self.ctx() if self.ctx else None
        if self.mon is not None:
            self.mon.__enter__()

    def run(self, steps):
        t = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(self.model(self.X), self.y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if hasattr(self.mon, "record_loss"):
                self.mon.record_loss(loss)
        return (time.perf_counter() - t) / steps

    def close(self):
        if self.mon is not None:
            self.mon.__exit__(None, None, None)
            if hasattr(self.mon, "memory"):
                return self.mon.memory()["bytes"]
            return self.mon.nbytes()
        return 0


CONFIGS = ("plain", "watch()", "watch(every=1)", "naive hooks")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats x {args.steps} steps, "
          "ratio = median over repeats of (block time / plain block time)")
    print(f"{'loop':18s} {'config':16s} {'ms/step':>8s} {'ratio':>7s} {'min..max ratio':>16s} {'state KiB':>10s}")
    for loop, (model, X, y) in loops().items():
        runners = {c: Runner(c, model, X, y) for c in CONFIGS}
        for r in runners.values():
            r.run(12)                                   # warm-up (and the default schedule's first 10 steps)
        times = {c: [] for c in CONFIGS}
        for _ in range(args.repeats):
            for c, r in runners.items():
                times[c].append(r.run(args.steps))
        state = {c: r.close() for c, r in runners.items()}
        for c in CONFIGS:
            ratios = [t / p for t, p in zip(times[c], times["plain"])]
            print(f"{loop:18s} {c:16s} {1e3 * statistics.median(times[c]):8.3f} {statistics.median(ratios):7.3f} "
                  f"{min(ratios):7.3f}..{max(ratios):<7.3f} {state[c] / 1024:10.1f}")


if __name__ == "__main__":
    main()
