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
"RSS +MiB" is how much more resident memory a configuration's process grows by over 60 steps than
plain training's does, each measured alone in a fresh subprocess (CPU has no allocator counters).

A second table (``--mechanisms``) prices the interception mechanisms alone, switched on at every
step with nothing recorded: an empty pass-through ``TorchFunctionMode``, global module forward
pre/post hooks that do nothing, and both.

A third table (``--no-profile`` skips it) says where the every-step cost of ``watch(every=1)`` goes:
``torch.profiler`` over the same steps of plain training and of ``watch(every=1)``, the ops whose self
CPU time grew most per step, and the time spent outside any op (Python: hooks and bookkeeping).
What ``every=1`` records at every step and what only on the default schedule's steps is in
``impediments.monitor.schedule``.

``--clock cpu`` times blocks by the process's CPU time instead of wall time: on a machine shared
with other jobs, wall time also counts the time the core was given to them.

Timings on a shared CPU are noisy (glibc's heap trimming alone moves a CNN step by 30 %): read
the min..max column, and compare only ratios from the same run.

    python benchmarks/overhead.py [--repeats 11] [--steps 30] [--threads 1] [--no-memory] [--no-mechanisms]
                                  [--no-profile] [--clock wall|cpu] [--llm | --llm-only] [--llm-memory-repeats 3]

``--llm`` adds the LLM-sized rows (:func:`llm_loops`: GPT-2 124M and a Llama-style model of similar size,
random init, 2 x 64 tokens): plain, ``watch()`` and ``watch(every=1)`` interleaved, the time of
``report()``, and the peak memory each adds over plain training's peak, both as the largest RSS after a
step and as the high-water RSS during the steps (transient buffers included), each the median of
``--llm-memory-repeats`` fresh processes, with glibc as it comes and with a fixed mmap threshold
(:data:`FIXED_THRESHOLD_ENV`: RSS then follows the memory in use; as it comes, glibc's heap also keeps
free space whose amount depends on the order of allocations) (targets: defaults <= 1.05x, growth <= 5 %
of plain's peak).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from torch.overrides import TorchFunctionMode

from impediments import watch
from impediments.train import Setup, iterate_steps


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


class CausalLM(nn.Module):
    """A Hugging Face causal language model as ``ids (N, T) -> next-token logits (N, vocabulary, T - 1)``, so
    the one training loop's ``F.cross_entropy(model(X), y)`` with ``y = X[:, 1:]`` is its language-modelling loss."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, ids):
        return self.lm(input_ids=ids).logits[:, :-1].transpose(1, 2)


def llm_loops(batch: int = 2, tokens: int = 64, only: str = ""):
    """(d) GPT-2 124M (``GPT2Config()``: 12 layers, 768 wide, 12 heads, vocabulary 50257, tied embedding)
    and (e) a Llama-style model of similar size (12 layers, 768 wide, 12 heads, SwiGLU 2048, RMSNorm,
    rotary positions, vocabulary 32000, untied: 134M), both built from their ``transformers`` configs
    with random init, on ``batch`` random sequences of ``tokens`` tokens (dropout off in both); ``only``:
    build only the models whose row name contains it."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    makers = {"(d) GPT-2 124M": lambda: GPT2LMHeadModel(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
              "(e) Llama-style": lambda: LlamaForCausalLM(LlamaConfig(
                  hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                  num_key_value_heads=12, vocab_size=32000, max_position_embeddings=tokens))}
    out = {}
    for name, make in makers.items():
        if only not in name:
            continue
        torch.manual_seed(0)
        lm = make()
        ids = torch.randint(0, lm.config.vocab_size, (batch, tokens))
        out[name] = (CausalLM(lm), ids, ids[:, 1:])
    return out


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


def full_batch_steps(model, opt, X, y, monitor=None):
    """Endless plain steps of ``model`` on the whole of ``(X, y)``, by the one training loop
    (:func:`impediments.train.iterate_steps`: nothing read back to the host)."""
    setup = Setup(model_fn=lambda: model, X=X, y=y, loss_fn=F.cross_entropy, opt_fn=lambda _: opt, steps=2**62,
                  batch_size=len(X), batches_fn=lambda X, y, size, seed: itertools.repeat((X, y)))
    return iterate_steps(setup, model, opt, monitor=monitor)


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
        self.steps = full_batch_steps(self.model, self.opt, X, y, self.mon if hasattr(self.mon, "record_loss") else None)

    clock = staticmethod(time.perf_counter)

    def run(self, steps):
        t = self.clock()
        for _ in range(steps):
            next(self.steps)
        return (self.clock() - t) / steps

    def close(self):
        if self.mon is not None:
            self.mon.__exit__(None, None, None)
            if hasattr(self.mon, "memory"):
                return self.mon.memory()["bytes"]
            return self.mon.nbytes()
        return 0


CONFIGS = ("plain", "watch()", "watch(every=1)", "naive hooks")


class _EmptyMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class Mechanism:
    """Interception switched on for every step, recording nothing (``mode``, ``hooks`` or both)."""

    def __init__(self, which):
        self.which, self.mode, self.handles = which, None, []

    def __enter__(self):
        if "mode" in self.which:
            self.mode = _EmptyMode()
            self.mode.__enter__()
        if "hooks" in self.which:
            reg = torch.nn.modules.module
            self.handles = [reg.register_module_forward_pre_hook(lambda m, a: None),
                            reg.register_module_forward_hook(lambda m, a, o: None)]
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
        for h in self.handles:
            h.remove()


def interleaved(loop, configs, repeats, steps, make):
    """Median ratio to the first config, min..max ratio, median ms/step, and the runners."""
    model, X, y = loop
    runners = {c: make(c, model, X, y) for c in configs}
    for r in runners.values():
        r.run(12)                                   # warm-up (and the default schedule's first 10 steps)
    times = {c: [] for c in configs}
    for _ in range(repeats):
        for c, r in runners.items():
            times[c].append(r.run(steps))
    base = configs[0]
    out = {}
    for c in configs:
        ratios = [t / p for t, p in zip(times[c], times[base])]
        out[c] = (statistics.median(ratios), min(ratios), max(ratios), statistics.median(times[c]))
    return out, runners


class MechanismRunner(Runner):
    def __init__(self, config, model, X, y):
        super().__init__("plain", model, X, y)
        self.mech = Mechanism(config) if config != "plain" else None

    def run(self, steps):
        if self.mech is None:
            return super().run(steps)
        with self.mech:
            return super().run(steps)


def profile_rows(data, steps: int, top: int) -> tuple[list, dict]:
    """``torch.profiler`` of ``steps`` steps of plain training and of ``watch(every=1)`` (each after a
    12-step warm-up): the ``top`` ops whose self CPU time per step grew most, as ``(op, plain us,
    every=1 us, calls added)``, and the per-step totals (wall, in ops, outside ops)."""
    from torch.profiler import ProfilerActivity, profile

    model, X, y = data
    seen = {}
    for config in ("plain", "watch(every=1)"):
        r = Runner(config, model, X, y)
        r.run(12)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            r.run(steps)
            wall = (time.perf_counter() - t) / steps * 1e6
        r.close()
        ops = {e.key: (e.self_cpu_time_total / steps, e.count / steps) for e in prof.key_averages()}
        seen[config] = (ops, wall, sum(v[0] for v in ops.values()))
    (a, wall_a, in_a), (b, wall_b, in_b) = seen["plain"], seen["watch(every=1)"]
    keys = set(a) | set(b)
    grown = sorted(keys, key=lambda k: b.get(k, (0, 0))[0] - a.get(k, (0, 0))[0], reverse=True)[:top]
    rows = [(k, a.get(k, (0, 0))[0], b.get(k, (0, 0))[0], b.get(k, (0, 0))[1] - a.get(k, (0, 0))[1]) for k in grown]
    totals = {"wall_plain": wall_a, "wall_every1": wall_b, "ops_plain": in_a, "ops_every1": in_b,
              "outside_plain": wall_a - in_a, "outside_every1": wall_b - in_b}
    return rows, totals


def llm_rows(args, results) -> None:
    """The LLM-sized rows: plain, ``watch()`` and ``watch(every=1)`` interleaved in one run (the ratio per
    repeat, median over repeats), the time of ``report()`` (statistics and diagnosis) after the run, and
    the peak resident memory each configuration adds over plain training, in fresh processes (the median of
    ``--llm-memory-repeats`` each, configurations interleaved), with glibc as it comes and with a fixed mmap
    threshold (:func:`rss_peak_mib`: the second measures the memory in use, the first adds what glibc's heap
    keeps, which depends on the order of allocations)."""
    configs = ("plain", "watch()", "watch(every=1)")
    print(f"\nLLM-sized models (batch {args.llm_batch} x {args.llm_tokens} tokens), {args.llm_repeats} repeats x "
          f"{args.llm_steps} steps; memory over {args.llm_memory_steps} steps in fresh processes, median of "
          f"{args.llm_memory_repeats}; 'glibc': as it comes; 'fixed': MALLOC_MMAP_THRESHOLD_=131072 (memory in use)")
    print(f"{'loop':18s} {'config':16s} {'s/step':>8s} {'ratio':>7s} {'min..max ratio':>16s} {'report s':>9s} "
          f"{'glibc peak':>10s} {'+% peak':>8s} {'+% HWM':>7s} {'fixed peak':>10s} {'+MiB':>6s} {'+% peak':>8s} "
          f"{'+% HWM':>7s}")
    results["llm"] = {}
    nan = float("nan")
    for loop, data in llm_loops(args.llm_batch, args.llm_tokens, args.only).items():
        res, runners = interleaved(data, configs, args.llm_repeats, args.llm_steps, Runner)
        report_s = {}
        for c, r in reversed(runners.items()):   # last entered, first exited: monitors nest like with-blocks
            if r.mon is not None:
                t = time.perf_counter()
                r.mon.report()
                report_s[c] = time.perf_counter() - t
            r.close()
        del runners
        mem = {} if args.no_memory else {a: memory_medians(args, loop, configs, a) for a in ("default", "fixed")}
        for c in configs:
            med, lo, hi, sec = res[c]
            row = {"ratio": med, "min": lo, "max": hi, "s_per_step": sec, "report_s": report_s.get(c)}
            for a, m in mem.items():
                (peak, _, hwm), (peak0, _, hwm0) = m[c], m["plain"]
                row[a] = {"peak_rss_mib": peak, "peak_growth_mib": peak - peak0,
                          "peak_growth_pct": 100 * (peak - peak0) / peak0, "hwm_mib": hwm,
                          "hwm_growth_mib": hwm - hwm0, "hwm_growth_pct": 100 * (hwm - hwm0) / hwm0}
            d, f = row.get("default", {}), row.get("fixed", {})
            print(f"{loop:18s} {c:16s} {sec:8.2f} {med:7.3f} {lo:7.3f}..{hi:<7.3f} {report_s.get(c, nan):9.2f} "
                  f"{d.get('peak_rss_mib', nan):10.0f} {d.get('peak_growth_pct', nan):8.1f} "
                  f"{d.get('hwm_growth_pct', nan):7.1f} {f.get('peak_rss_mib', nan):10.0f} "
                  f"{f.get('peak_growth_mib', nan):6.0f} {f.get('peak_growth_pct', nan):8.1f} "
                  f"{f.get('hwm_growth_pct', nan):7.1f}")
            results["llm"][f"{loop} | {c}"] = row


def memory_medians(args, loop: str, configs, allocator: str) -> dict:
    """``{config: (peak after a step, base, high-water)}``, each the median over ``--llm-memory-repeats`` fresh
    processes, the configurations interleaved (:func:`rss_peak_mib`)."""
    runs = {c: [] for c in configs}
    for _ in range(args.llm_memory_repeats):
        for c in configs:
            runs[c].append(rss_peak_mib(loop, c, args.llm_memory_steps, args.threads,
                                        llm=(args.llm_batch, args.llm_tokens), allocator=allocator))
    return {c: tuple(statistics.median(v) for v in zip(*r)) for c, r in runs.items()}


#: glibc's environment for :func:`rss_peak_mib`'s ``allocator="fixed"``: a fixed mmap threshold of 128 KiB (glibc's
#: initial one), so every allocation above it is its own mapping, returned on free, and the heap holds small
#: objects only: RSS then follows the memory in use, whatever the order of allocations
FIXED_THRESHOLD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def rss_peak_mib(loop: str, config: str, steps: int, threads: int, llm=None,
                 allocator: str = "default") -> tuple[float, float, float]:
    """``(peak RSS after a step, RSS before the first step, high-water RSS during the steps)`` in MiB of
    ``steps`` steps of ``loop`` under ``config``, in a fresh process (the model, its data and its optimizer
    built). glibc keeps freed heap below its mmap threshold, so RSS after a step holds what a step left;
    the high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` once the setup is done) also
    counts the transient buffers of a step freed before it returns (an out-of-memory happens there).

    ``allocator="default"`` runs glibc as it comes: its mmap threshold rises to the size of the largest
    mapping freed (up to 32 MiB), after which mid-sized tensors come from its heap, and the heap keeps the
    free space between chunks still in use: how much depends on the order of allocations, and moves by
    hundreds of MiB between configurations that allocate the same tensors. ``"fixed"`` sets
    :data:`FIXED_THRESHOLD_ENV`: RSS then measures the memory in use (what the monitor holds and allocates)."""
    if allocator not in ("default", "fixed"):
        raise ValueError(f"allocator must be 'default' or 'fixed', got {allocator!r}")
    make = f"O.llm_loops({llm[0]}, {llm[1]}, {loop!r})" if llm else "O.loops()"
    code = (f"import sys, torch; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); "
            f"import overhead as O; torch.set_num_threads({threads}); m, X, y = {make}[{loop!r}]; "
            f"r = O.Runner({config!r}, m, X, y); del m; base = O._rss_mib(); peak = base; O._reset_hwm()\n"
            f"for _ in range({steps}):\n    r.run(1); peak = max(peak, O._rss_mib())\n"
            "hwm = O._hwm_mib(); r.close(); print(peak, base, hwm)")
    env = {**os.environ, **(FIXED_THRESHOLD_ENV if allocator == "fixed" else {})}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    peak, base, hwm = map(float, res.stdout.strip().splitlines()[-1].split())
    return peak, base, hwm


def _reset_hwm() -> None:
    """Reset this process's peak-RSS mark (Linux >= 4.0; elsewhere the mark counts from the start)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _hwm_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def rss_growth_mib(loop: str, config: str, steps: int, threads: int) -> float:
    """Growth of resident memory (MiB) over ``steps`` steps of ``loop`` under ``config``, in a fresh
    process: the largest RSS seen after any step minus the RSS before the first one. glibc keeps
    freed heap, so this tracks the peak heap of a step, not only what is alive between steps."""
    code = (f"import sys, torch; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); "
            f"import overhead as O; torch.set_num_threads({threads}); m, X, y = O.loops()[{loop!r}]; "
            f"r = O.Runner({config!r}, m, X, y); base = O._rss_mib(); peak = base\n"
            f"for _ in range({steps}):\n    r.run(1); peak = max(peak, O._rss_mib())\n"
            "r.close(); print(peak - base)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {len(__import__('os').sched_getaffinity(0))} cores, torch {torch.__version__}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-mechanisms", action="store_true", help="skip the interception-mechanism table")
    p.add_argument("--no-profile", action="store_true", help="skip the torch.profiler table of watch(every=1)")
    p.add_argument("--profile-steps", type=int, default=50, help="steps profiled per configuration")
    p.add_argument("--profile-top", type=int, default=12, help="ops listed per loop in the profiler table")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time blocks by wall time or by this process's CPU time (fairer on a shared machine)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--only", default="", help="run only the loops whose name contains this (e.g. MLP)")
    p.add_argument("--frameworks", action="store_true",
                   help="also the torch.compile and framework-callback rows (benchmarks/frameworks.py)")
    p.add_argument("--fit-steps", type=int, default=200, help="steps per framework fit (--frameworks)")
    p.add_argument("--fit-repeats", type=int, default=5, help="with/without pairs per framework (--frameworks)")
    p.add_argument("--compile-repeats", type=int, default=3, help="fresh-process compile-time pairs (--frameworks)")
    p.add_argument("--llm", action="store_true", help="also the LLM-sized rows (GPT-2 124M, Llama-style)")
    p.add_argument("--llm-only", action="store_true", help="only the LLM-sized rows")
    p.add_argument("--llm-repeats", type=int, default=5)
    p.add_argument("--llm-steps", type=int, default=10)
    p.add_argument("--llm-batch", type=int, default=2)
    p.add_argument("--llm-tokens", type=int, default=64)
    p.add_argument("--llm-memory-repeats", type=int, default=3,
                   help="fresh processes per configuration and allocator setting for the LLM rows' memory (median)")
    p.add_argument("--llm-memory-steps", type=int, default=12,
                   help="steps per fresh process for the LLM rows' peak memory (the default schedule's first "
                        "10 steps are all sampled)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    Runner.clock = staticmethod(time.process_time if args.clock == "cpu" else time.perf_counter)
    results = {"machine": machine(), "threads": args.threads, "repeats": args.repeats, "steps": args.steps,
               "clock": args.clock, "load_average": list(os.getloadavg()), "monitor": {}, "mechanisms": {},
               "profile": {}}
    print(f"{results['machine']}; {args.threads} thread(s), {args.repeats} repeats x {args.steps} steps, "
          f"{args.clock} clock, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          "ratio = median over repeats of (block time / plain block time)")
    if not args.llm_only:
        print(f"{'loop':18s} {'config':16s} {'ms/step':>8s} {'ratio':>7s} {'min..max ratio':>16s} {'state KiB':>10s} "
              f"{'RSS +MiB':>14s}")
    selected = {} if args.llm_only else {k: v for k, v in loops().items() if args.only in k}
    for loop, data in selected.items():
        res, runners = interleaved(data, CONFIGS, args.repeats, args.steps, Runner)
        state = {c: r.close() for c, r in reversed(runners.items())}   # nested monitors exit last-in first-out
        rss = {} if args.no_memory else {c: rss_growth_mib(loop, c, 60, args.threads) for c in CONFIGS}
        for c in CONFIGS:
            med, lo, hi, ms = res[c]
            grow = f"{rss[c] - rss['plain']:14.1f}" if rss else f"{'-':>14s}"
            print(f"{loop:18s} {c:16s} {1e3 * ms:8.3f} {med:7.3f} {lo:7.3f}..{hi:<7.3f} {state[c] / 1024:10.1f} {grow}")
            results["monitor"][f"{loop} | {c}"] = {"ratio": med, "min": lo, "max": hi, "ms": 1e3 * ms,
                                                   "state_kib": state[c] / 1024,
                                                   "peak_rss_growth_mib": rss[c] - rss["plain"] if rss else None}
    if not args.no_mechanisms and selected:
        mech = ("plain", "mode", "hooks", "mode+hooks")
        print("\ninterception mechanisms alone, on at every step, recording nothing")
        print(f"{'loop':18s} " + " ".join(f"{c:>12s}" for c in mech))
        for loop, data in selected.items():
            if loop.startswith("(c)"):
                continue
            res, _ = interleaved(data, mech, args.repeats, args.steps, MechanismRunner)
            print(f"{loop:18s} " + " ".join(f"{res[c][0]:12.3f}" for c in mech))
            results["mechanisms"][loop] = {c: res[c][0] for c in mech}
    if not args.no_profile and selected:
        profile_table(args, selected, results)
    if args.frameworks:
        framework_rows(args, results)
    if args.llm or args.llm_only:
        llm_rows(args, results)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def profile_table(args, selected, results) -> None:
    """Where the every-step cost of ``watch(every=1)`` goes (see the module docstring)."""
    print(f"\nwhere watch(every=1) spends its time: torch.profiler, {args.profile_steps} steps each, self CPU us/step "
          "(ops whose time grew most; 'outside ops' = Python: hooks and bookkeeping)")
    print(f"{'loop':18s} {'op':44s} {'plain':>9s} {'every=1':>9s} {'added':>9s} {'calls+':>7s}")
    for loop, data in selected.items():
        rows, tot = profile_rows(data, args.profile_steps, args.profile_top)
        out = tot["outside_every1"] - tot["outside_plain"]
        print(f"{loop:18s} {'(whole step, wall)':44s} {tot['wall_plain']:9.0f} {tot['wall_every1']:9.0f} "
              f"{tot['wall_every1'] - tot['wall_plain']:9.0f}")
        print(f"{'':18s} {'(outside ops)':44s} {tot['outside_plain']:9.0f} {tot['outside_every1']:9.0f} {out:9.0f}")
        for op, a, b, calls in rows:
            print(f"{'':18s} {op[:44]:44s} {a:9.1f} {b:9.1f} {b - a:9.1f} {calls:7.1f}")
        results["profile"][loop] = {"totals": tot, "ops": [{"op": op, "plain_us": a, "every1_us": b, "calls_added": c}
                                                           for op, a, b, c in rows]}


def framework_rows(args, results) -> None:
    """torch.compile and the Lightning / HF Trainer / Keras callbacks, as ratios to the same run without
    the monitor (see benchmarks/frameworks.py)."""
    import frameworks as B

    print("\ntorch.compile (inductor) and framework callbacks: ratio to the same run without the monitor")
    print(f"{'row':34s} {'base':>12s} {'ratio':>7s} {'min..max ratio':>16s}")
    rows = {"(a) MLP compiled, watch() steady": lambda: B.compiled_steady(args.repeats, args.steps),
            "(a) MLP compiled, compile time": lambda: B.compile_time_ratio(args.compile_repeats, args.threads)}
    rows.update({f"(a) MLP, {n} + Doctor": (lambda n=n: B.framework_ratio(n, args.fit_steps, args.fit_repeats))
                 for n in B.FRAMEWORKS})
    results["frameworks"] = {}
    for name, fn in rows.items():
        med, lo, hi, base = fn()
        unit = f"{base:9.2f} s " if "compile time" in name else f"{base * (1 if 'steady' in name else 1e3):9.3f} ms"
        print(f"{name:34s} {unit:>12s} {med:7.3f} {lo:7.3f}..{hi:<7.3f}")
        results["frameworks"][name] = {"ratio": med, "min": lo, "max": hi, "base": base}


if __name__ == "__main__":
    main()
