"""The accelerator path (issue 26, item 5): one prepared script, a few minutes on one CUDA GPU.

It measures, on the GPU it finds, and writes one Markdown table (``--out``, and to stdout):

1. **Overhead.** ``watch()`` defaults and ``watch(every=1)`` against plain training, interleaved (each
   configuration runs a block of ``--steps`` steps in turn, ``--repeats`` times; the ratio to plain is
   taken per repeat, the median reported with its min..max), on the three loops of
   ``benchmarks/overhead.py`` (MLP on digits, small CNN, transformer block) and on GPT-2 124M
   (``overhead.llm_loops``: random init from its ``transformers`` config, ``--llm-batch`` x
   ``--llm-tokens`` tokens). Blocks are timed between two ``torch.cuda.synchronize()``. For GPT-2 also the
   peak GPU memory each configuration allocates (``torch.cuda.max_memory_allocated``, each configuration
   alone from a reset peak; target: growth <= 5 % of plain's peak) and the time of ``report()``.
2. **No host read.** ``torch.cuda.set_sync_debug_mode("error")`` raises on any operation that waits for
   the device. Plain training is run under it first (the control: the loop itself never syncs), then
   ``watch()`` defaults and ``every=1`` for ``--sync-steps`` steps each (sampled, full and unsampled
   steps all occur), on an MLP and on a wider one whose 512 x 512 weight has its update ratio from a sample
   of its values; ``report()`` is outside (it reads the statistics back, once).
3. **FSDP1 on one GPU** (``FullyShardedDataParallel`` refuses a CPU): a one-process NCCL group; the
   per-parameter statistics of the watched FSDP1 model against the same model unwrapped (same init and
   data), and the doctor's findings of both.
4. **Captured steps.** ``torch.compile(mode="reduce-overhead")`` (CUDA graphs under inductor) and a whole
   training step captured by hand with ``torch.cuda.graph`` (PyTorch's "whole network capture"
   recipe, an optimizer with ``capturable=True``): each run with and without ``watch()`` from the same
   init, on the same data; the check is that nothing raises and the losses are the same.

Without a CUDA device it prints one line and exits with status 2, unless ``--allow-cpu`` (a check of the
script itself, used by ``tests/test_gpu_script.py``: the parts that can run on the CPU run there, the
others are listed as "needs CUDA"; the numbers mean nothing).

    python benchmarks/gpu.py [--out gpu_results.md] [--repeats 7] [--steps 30] [--llm-batch 8]
                             [--llm-tokens 128] [--llm-steps 10] [--sync-steps 24] [--no-llm] [--only NAME]
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import socket
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead as O  # noqa: E402  (the loops, the runner and the interleaving of benchmarks/overhead.py)

from impediments import watch  # noqa: E402

CONFIGS = ("plain", "watch()", "watch(every=1)")
NEEDS_CUDA = "needs CUDA"
SECTIONS = ("overhead", "sync", "fsdp1", "captured")


class UsageError(Exception):
    """A bad command-line value: one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the bad value (and exit status 2)."""

    def error(self, message):
        raise UsageError(f"gpu.py: {message} (see --help)")


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_results.md", help="the Markdown table's file")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=30, help="steps per block of the small loops")
    p.add_argument("--llm-batch", type=int, default=8)
    p.add_argument("--llm-tokens", type=int, default=128)
    p.add_argument("--llm-repeats", type=int, default=5)
    p.add_argument("--llm-steps", type=int, default=10, help="steps per block of GPT-2 124M")
    p.add_argument("--sync-steps", type=int, default=24, help="steps per configuration under sync debug mode")
    p.add_argument("--no-llm", action="store_true", help="skip GPT-2 124M")
    p.add_argument("--only", default="", help=f"run only these sections, comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--allow-cpu", action="store_true",
                   help="without CUDA, run what can run on the CPU (checks the script; its numbers mean nothing)")
    args = p.parse_args(argv)
    for name in ("repeats", "steps", "llm_batch", "llm_tokens", "llm_repeats", "llm_steps", "sync_steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"gpu.py: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        raise UsageError(f"gpu.py: unknown section {bad[0]!r} in --only; valid: {', '.join(SECTIONS)}")
    args.sections = only or list(SECTIONS)
    return args


def no_cuda_message() -> str:
    """The one line printed when there is no CUDA device."""
    return (f"gpu.py needs a CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}); "
            "run it on a GPU machine, or pass --allow-cpu to check the script on the CPU")


def device_line(device: torch.device) -> str:
    """The card (or CPU), its memory, and the software versions, for the table's header."""
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"{torch.cuda.device_count()} GPU(s) visible")
    return f"CPU ({O.machine()}): a check of the script, not a measurement"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class DeviceRunner(O.Runner):
    """``overhead.Runner`` on ``device``: the model (deep-copied there by the runner), its data, and blocks
    timed between two synchronizations."""

    device = torch.device("cpu")

    def run(self, steps):
        synchronize(self.device)
        t = time.perf_counter()
        for _ in range(steps):
            next(self.steps)
        synchronize(self.device)
        return (time.perf_counter() - t) / steps


def on_device(loop: tuple, device: torch.device) -> tuple:
    model, X, y = loop
    return model.to(device), X.to(device), y.to(device)


def make_runner(device: torch.device):
    runner = type("Runner", (DeviceRunner,), {"device": device})
    return lambda config, model, X, y: runner(config, model, X, y)


def overhead_rows(device, loops: dict, repeats: int, steps: int, memory: bool = False) -> list[dict]:
    """One row per loop and configuration: ``s_per_step``, median ``ratio`` to plain and its ``min``/``max``,
    ``report_s`` for the watched ones, and with ``memory`` the peak memory allocated on the device by each
    configuration alone (``peak_mib``, ``growth_pct`` of plain's)."""
    rows = []
    for name, loop in loops.items():
        loop = on_device(loop, device)
        res, runners = O.interleaved(loop, CONFIGS, repeats, steps, make_runner(device))
        report_s = {}
        for c, r in reversed(runners.items()):   # last entered, first exited: monitors nest like with-blocks
            if r.mon is not None:
                synchronize(device)
                t = time.perf_counter()
                r.mon.report()
                report_s[c] = time.perf_counter() - t
            r.close()
        del runners
        peaks = peak_memory(device, loop, steps) if memory else {}
        for c in CONFIGS:
            med, lo, hi, sec = res[c]
            row = {"loop": name, "config": c, "s_per_step": sec, "ratio": med, "min": lo, "max": hi,
                   "report_s": report_s.get(c)}
            if peaks:
                row["peak_mib"] = peaks[c]
                row["growth_pct"] = 100 * (peaks[c] - peaks["plain"]) / peaks["plain"]
            rows.append(row)
    return rows


def peak_memory(device, loop: tuple, steps: int) -> dict:
    """``{config: peak MiB allocated on the device}`` over 12 + ``steps`` steps of each configuration alone
    (the default schedule's first 10 steps are all sampled), the model, its optimizer and data included."""
    if device.type != "cuda":
        return {}
    out = {}
    for c in CONFIGS:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        r = make_runner(device)(c, *loop)
        r.run(12 + steps)
        out[c] = torch.cuda.max_memory_allocated(device) / 2**20
        r.close()
        del r
    return out


def sync_models() -> dict:
    """The models of the sync check: overhead's MLP (every parameter at most 2^16 values: update ratios exact)
    and a wider one (512 x 512: its update ratio from the sampled values), on the MLP's digits batch."""
    model, X, y = O.loops()["(a) MLP"]
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return {"MLP": (model, X, y), "wide MLP": (wide, X, y)}


def sync_debug_rows(device, steps: int) -> list[dict]:
    """Plain, ``watch()`` and ``watch(every=1)`` for ``steps`` steps each, on each of :func:`sync_models`, under
    ``torch.cuda.set_sync_debug_mode("error")``: ``result`` is "no sync" or the first line of what raised."""
    names = [(m, c) for m in sync_models() for c in CONFIGS]
    if device.type != "cuda":
        return [{"check": f"sync debug mode, {m}, {c}", "result": NEEDS_CUDA} for m, c in names]
    rows = []
    for m, (model, X, y) in sync_models().items():
        model, X, y = on_device((model, X, y), device)
        for c in CONFIGS:
            r = make_runner(device)(c, model, X, y)
            torch.cuda.synchronize(device)
            torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(steps):
                    next(r.steps)
                result = "no sync"
            except RuntimeError as exc:
                result = "SYNC: " + first_line(exc)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            r.close()
            rows.append({"check": f"sync debug mode, {m}, {c}, {steps} steps", "result": result})
    return rows


def first_line(exc: BaseException) -> str:
    """The exception's type and first line, and where in impediments it was raised when it was."""
    where = [f for f in traceback.extract_tb(exc.__traceback__) if "impediments" in f.filename]
    at = f" (at {os.path.basename(where[-1].filename)}:{where[-1].lineno})" if where else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{at}"


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def batches(device, n: int, batch: int = 64) -> list:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(batch, 64, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device))
            for _ in range(n)]


def train_losses(model, opt, data, watched: bool):
    """Losses (a device tensor, read once at the end) of SGD steps on ``data``; the monitor when ``watched``."""
    losses = []

    def steps():
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())

    if watched:
        with watch(model, optimizer=opt) as mon:
            steps()
        return torch.stack(losses).cpu(), mon
    steps()
    return torch.stack(losses).cpu(), None


def fsdp1_rows(device, steps: int = 12) -> list[dict]:
    """FSDP1 (``use_orig_params=True``) on one GPU in a one-process NCCL group, watched, against the same
    model unwrapped: the largest relative difference of the per-parameter gradient norms, weight norms and
    update ratios, and whether the doctor's findings (code, place) are the same."""
    if device.type != "cuda":
        return [{"check": "FSDP1, one GPU", "result": NEEDS_CUDA}]
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from impediments.doctor import diagnose

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        data = batches(device, steps)
        ref = mlp().to(device)
        wrapped = FSDP(mlp().to(device), use_orig_params=True, device_id=device)
        out = {}
        for name, model in (("plain", ref), ("fsdp1", wrapped)):
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            losses, mon = train_losses(model, opt, data, watched=True)
            out[name] = (losses, mon.stats())
        (l_ref, s_ref), (l_fsdp, s_fsdp) = out["plain"], out["fsdp1"]
        prefix = "_fsdp_wrapped_module."
        user = {n.replace(prefix, ""): n for n in s_fsdp.params}
        names = sorted(s_ref.params)
        naming = "the user's names" if sorted(s_fsdp.params) == names else f"names carry FSDP's {prefix!r}"
        if sorted(user) != names:
            return [{"check": "FSDP1, one GPU", "result": f"parameters differ: {sorted(s_fsdp.params)} vs {names}"}]
        worst = max(rel(getattr(s_fsdp.params[user[n]], f), getattr(s_ref.params[n], f)) for n in names
                    for f in ("grad_norm", "weight_norm", "update_to_weight"))
        found = lambda st: sorted((f.code, tuple(w.replace(prefix, "") for w in f.where))  # noqa: E731
                                  for f in diagnose(st).findings)
        same = found(s_fsdp) == found(s_ref)
        return [{"check": f"FSDP1, one GPU, {steps} steps", "result":
                 f"runs; {naming}; losses max diff {float((l_fsdp - l_ref).abs().max()):.2e}; per-parameter "
                 f"statistics max rel. diff {worst:.2e}; findings {'identical' if same else 'DIFFER'}"}]
    except Exception as exc:  # the point is to say what broke
        return [{"check": "FSDP1, one GPU", "result": "FAILED: " + first_line(exc)}]
    finally:
        dist.destroy_process_group()


def rel(a: float, b: float) -> float:
    """``|a - b| / |b|``; 0 for equal values or two NaNs, infinite for one NaN."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(b), 1e-30)


def compiled_rows(device, steps: int = 20) -> list[dict]:
    """``torch.compile(mode="reduce-overhead")`` with and without ``watch()``, same init and data."""
    if device.type != "cuda":
        return [{"check": 'torch.compile(mode="reduce-overhead")', "result": NEEDS_CUDA}]
    data = batches(device, steps)
    losses = {}
    try:
        for watched in (False, True):
            torch._dynamo.reset()
            model = mlp().to(device)
            compiled = torch.compile(model, mode="reduce-overhead")
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            losses[watched], mon = train_losses(compiled, opt, data, watched)
        diff = float((losses[True] - losses[False]).abs().max())
        return [{"check": f'torch.compile(mode="reduce-overhead"), {steps} steps',
                 "result": f"runs; losses max diff {diff:.2e} with and without watch()"}]
    except Exception as exc:
        return [{"check": 'torch.compile(mode="reduce-overhead")', "result": "FAILED: " + first_line(exc)}]


def captured_losses(device, data, watched: bool, replays: int):
    """PyTorch's whole-network capture: 3 warm-up steps on a side stream, one step captured in a CUDA graph
    (forward, backward, ``Adam(capturable=True)`` step), then ``replays`` replays on ``data``; under
    ``watch()`` when ``watched`` (its hooks run while capturing, not at replays). Returns the losses."""
    model = mlp().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    static_x, static_y = (t.clone() for t in data[0])
    mon = watch(model, optimizer=opt) if watched else None
    if mon is not None:
        mon.__enter__()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(static_x), static_y).backward()
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = F.cross_entropy(model(static_x), static_y)
            static_loss.backward()
            opt.step()
        losses = []
        for i in range(replays):
            x, y = data[i % len(data)]
            static_x.copy_(x)
            static_y.copy_(y)
            graph.replay()
            losses.append(static_loss.detach().clone())
        return torch.stack(losses).cpu()
    finally:
        if mon is not None:
            mon.__exit__(None, None, None)


def cuda_graph_rows(device, replays: int = 20) -> list[dict]:
    if device.type != "cuda":
        return [{"check": "whole step captured with torch.cuda.graph", "result": NEEDS_CUDA}]
    data = batches(device, replays)
    try:
        plain = captured_losses(device, data, False, replays)
        watched = captured_losses(device, data, True, replays)
        diff = float((plain - watched).abs().max())
        return [{"check": f"whole step captured with torch.cuda.graph, {replays} replays",
                 "result": f"captures and replays under watch(); losses max diff {diff:.2e}"}]
    except Exception as exc:
        return [{"check": "whole step captured with torch.cuda.graph", "result": "FAILED: " + first_line(exc)}]


def markdown(device_text: str, args, overhead: list[dict], checks: list[dict]) -> str:
    """The results as Markdown: the overhead table, then the checks."""
    out = [f"GPU results ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): {device_text}", "",
           f"Overhead: ratio = median over {args.repeats} (GPT-2: {args.llm_repeats}) interleaved repeats of "
           f"(block time / plain block time), {args.steps} (GPT-2: {args.llm_steps}) steps a block after 12 warm-up "
           f"steps; GPT-2 124M on {args.llm_batch} x {args.llm_tokens} tokens. Peak memory: "
           "torch.cuda.max_memory_allocated, each configuration alone.", ""]
    if overhead:
        out += ["| loop | config | ms/step | ratio | min..max | report() s | peak MiB | growth |",
                "|---|---|---|---|---|---|---|---|"]
        for r in overhead:
            rep = f"{r['report_s']:.2f}" if r.get("report_s") is not None else ""
            peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else ""
            grow = f"{r['growth_pct']:+.1f} %" if "growth_pct" in r and r["config"] != "plain" else ""
            out.append(f"| {r['loop']} | {r['config']} | {1e3 * r['s_per_step']:.3f} | {r['ratio']:.3f} | "
                       f"{r['min']:.3f}..{r['max']:.3f} | {rep} | {peak} | {grow} |")
        out.append("")
    if checks:
        out += ["| check | result |", "|---|---|"] + [f"| {c['check']} | {c['result']} |" for c in checks]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(no_cuda_message(), file=sys.stderr)
        return 2
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(0)
    overhead, checks = [], []
    if "overhead" in args.sections:
        overhead += overhead_rows(device, O.loops(), args.repeats, args.steps)
        if not args.no_llm:
            llm = O.llm_loops(args.llm_batch, args.llm_tokens, "GPT-2")
            overhead += overhead_rows(device, llm, args.llm_repeats, args.llm_steps, memory=True)
    if "sync" in args.sections:
        checks += sync_debug_rows(device, args.sync_steps)
    if "fsdp1" in args.sections:
        checks += fsdp1_rows(device)
    if "captured" in args.sections:
        checks += compiled_rows(device) + cuda_graph_rows(device)
    text = markdown(device_line(device), args, overhead, checks)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
