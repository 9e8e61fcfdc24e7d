"""The transformers sweep: every model type ``transformers`` builds from a config, healthy and with two
injected faults, through ``imp.checkup`` and ``imp.watch``.

Usage (from the repository root; ``make bench`` runs it through ``benchmarks/hf_sweep.py``)::

    python benchmarks/hf_sweep.py [--jobs 2] [--steps 40] [--fault-steps 15] [--only TYPE ...] [--all-heads]
                                  [--held-out] [--json out.json] [--rows rows.jsonl] [--from-rows rows.jsonl]
                                  [--md benchmarks/calibration/hf_sweep.md]

Per row (a model type with one head, :mod:`hf_models`), three runs, each with the same batches:

    healthy   the model as built (its own ``_init_weights``), AdamW lr 1e-3, weight decay 0.01
    std1      init std 1.0: ``initializer_range=1.0`` (BART's ``init_std``) in the config where the
              config has it, else ``nn.init.normal_(w, 0, 1)`` on every Linear and Embedding weight
    high_lr   the healthy model trained with lr 1.0 (1000x the recipe)

Each run is what a user does: ``imp.checkup(model, batch, loss_fn=lambda out: out.loss)`` on the
first batch, then ``--steps`` AdamW steps under ``imp.watch(model, optimizer=opt)`` with
``mon.record_loss(loss)``, and ``mon.report()``. A verdict is the sorted set of warning and error
codes (info does not count as an alarm). At init each run also measures what the std-1.0 fault
changes: the per-Linear output/input variance ratio against ``fan_in * sigma^2`` and the RMS of each
block's hidden states (``output_hidden_states``).

The held-out fifth (:mod:`hf_heldout`) is skipped unless ``--held-out``. Exit status 0: this is a
measurement, not a test.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import signal
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch

import impediments as imp

from . import hf_models
from .hf_heldout import HELD_OUT
from .hf_report import FAULTS, markdown, summarize, write_markdown

RECIPE_LR, HIGH_LR, WEIGHT_DECAY = 1e-3, 1.0, 0.01
DEFAULT_STEPS, FAULT_STEPS, JOB_SECONDS = 40, 15, 150
MD_PATH = Path(__file__).resolve().parent / "hf_sweep.md"


def _quiet() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")


def verdict(report) -> list[str]:
    """The sorted warning and error codes of a report (info is not an alarm)."""
    return sorted({f.code for f in report.findings if f.severity in ("warning", "error")})


def alarms(report) -> list[dict]:
    """Code, severity, where and evidence of every warning or error."""
    return [{"code": f.code, "severity": f.severity, "where": list(f.where)[:4], "caused_by": f.caused_by,
             "evidence": f.to_dict()["evidence"]} for f in report.findings if f.severity in ("warning", "error")]


def _loss(output):
    return output.loss


def build_faulty(spec: hf_models.Spec, fault: str | None, seed: int = 0) -> tuple[torch.nn.Module, str]:
    """The row's model with ``fault`` injected; the second item says how the fault was injected."""
    if fault != "std1":
        return hf_models.build(spec, seed=seed), ""
    probe = hf_models.tiny_config(spec.model_type, spec.head)
    key = hf_models.init_scale_key(probe)
    if key is not None:
        return hf_models.build(spec, initializer_range=1.0, seed=seed), f"config {key}=1.0"
    model = hf_models.build(spec, seed=seed)
    n = hf_models.normal_init_(model, 1.0)
    return model, f"nn.init.normal_(std=1) on {n} weights"


def init_probe(model: torch.nn.Module, batch: dict) -> dict:
    """At the current weights, in eval mode, without gradients: each Linear's output/input variance
    ratio divided by ``fan_in * var(W)`` (1 for zero-mean independent inputs), and the RMS of every
    hidden state the model returns (embeddings first, then one per block)."""
    ratios, gains = [], []
    handles = []

    def hook(module, args, out):
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.numel() < 2:
            return
        vin, vout = x.float().pow(2).mean().item(), out.float().var().item()
        w2 = module.weight.float().pow(2).mean().item()
        if vin > 0 and w2 > 0:
            gains.append(vout / vin)
            ratios.append(vout / (vin * module.in_features * w2))

    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rms = {}
    for key in ("hidden_states", "encoder_hidden_states", "decoder_hidden_states"):
        states = getattr(out, key, None)
        if isinstance(states, (tuple, list)) and states and all(isinstance(s, torch.Tensor) for s in states):
            rms[key] = [round(s.float().pow(2).mean().sqrt().item(), 3) for s in states]
    finite = [g for g in gains if math.isfinite(g)]
    return {"loss": float(out.loss) if getattr(out, "loss", None) is not None else float("nan"),
            "linear_gain_median": statistics.median(finite) if finite else None,
            "gain_over_fan_in_median": statistics.median(ratios) if ratios else None,
            "linears": len(gains), "hidden_rms": rms}


def run(spec: hf_models.Spec, fault: str | None = None, steps: int = DEFAULT_STEPS, seed: int = 0) -> dict:
    """One run: checkup on the first batch, ``steps`` AdamW steps under ``watch()``, ``mon.report()``."""
    start = time.perf_counter()
    model, injected = build_faulty(spec, fault, seed)
    data = hf_models.make_data(spec.head, seed)
    stream = hf_models.batches(data)
    first = next(stream)
    probe = init_probe(model, first)
    checkup = imp.checkup(model, first, loss_fn=_loss)
    lr = HIGH_LR if fault == "high_lr" else RECIPE_LR
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    model.train()
    losses = []
    batch = first
    with imp.watch(model, optimizer=opt) as mon:
        for _ in range(steps):
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mon.record_loss(loss)
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                break
            batch = next(stream)
    report = mon.report()
    tail = losses[-5:]
    return {"checkup": verdict(checkup), "watch": verdict(report),
            "checkup_alarms": alarms(checkup), "watch_alarms": alarms(report),
            "checkup_codes": sorted(checkup.codes), "watch_codes": sorted(report.codes),
            "loss_first": losses[0] if losses else float("nan"),
            "loss_last": sum(tail) / len(tail) if tail else float("nan"),
            "steps_run": len(losses), "injected": injected, "probe": probe,
            "seconds": round(time.perf_counter() - start, 2)}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_row(spec: hf_models.Spec, steps: int = DEFAULT_STEPS, seed: int = 0, faults=FAULTS,
            limit_s: int = JOB_SECONDS, fault_steps: int = FAULT_STEPS) -> dict:
    """The healthy run and each fault's run of one row; a row that cannot be built or run is skipped,
    with the reason (the exception's first line, or the time limit)."""
    _quiet()
    torch.set_num_threads(1)
    row = {"type": spec.model_type, "head": spec.head, "class": spec.class_name, "status": "built",
           "reason": "", "runs": {}, "started_at": time.time()}
    previous = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    try:
        for fault in (None, *faults):
            if hasattr(signal, "SIGALRM"):
                signal.alarm(limit_s)
            try:
                row["runs"][fault or "healthy"] = run(spec, fault, steps if fault is None else fault_steps, seed)
            finally:
                if hasattr(signal, "SIGALRM"):
                    signal.alarm(0)
    except _Timeout:
        row["status"], row["reason"] = "skipped", f"a run took over {limit_s} s (wall clock, 1 thread)"
    except Exception as exc:      # a row that does not build or run is reported with its reason
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row["status"], row["reason"] = "skipped", f"{type(exc).__name__}: {first_line}"[:160]
    finally:
        if previous is not None:
            signal.signal(signal.SIGALRM, previous)
    if row["status"] == "skipped" and "healthy" in row["runs"]:
        row["status"] = "partial"
    row["finished_at"] = time.time()
    return row


def _job(args):
    spec, steps, fault_steps, seed = args
    return run_row(spec, steps, seed, fault_steps=fault_steps)


def select(args) -> list[hf_models.Spec]:
    types = [t for t in hf_models.model_types() if args.held_out or t not in HELD_OUT]
    if args.only:
        unknown = sorted(set(args.only) - set(hf_models.model_types()))
        if unknown:
            raise SystemExit(f"hf_sweep: unknown model type {unknown[0]!r}; see hf_models.model_types()")
        types = [t for t in types if t in args.only]
    return hf_models.specs(all_heads=args.all_heads, types=types)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--fault-steps", type=int, default=FAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--all-heads", action="store_true", help="every head a type has, not only its first")
    parser.add_argument("--held-out", action="store_true", help="include the held-out fifth (run it last)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rows", type=Path, help="append each finished row to this JSON-lines file")
    parser.add_argument("--from-rows", type=Path, help="take the rows already in this JSON-lines file, run the rest")
    parser.add_argument("--md", type=Path, default=MD_PATH)
    parser.add_argument("--wall-seconds", type=float, help="with --from-rows: the wall time of the run that made them")
    parser.add_argument("--doctor", default="", help="which impediments the rows measured (a commit), for the header")
    parser.add_argument("--trainer", action="store_true",
                        help="a sample (hf_trainer.SAMPLE, or --only) through transformers.Trainer with the impediments "
                             "Doctor callback, against the sweep's own loop (issue 25 item 4)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        print(f"hf_sweep: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    if args.trainer:
        from . import hf_trainer

        rows = hf_trainer.main(args.only, args.steps, args.fault_steps, args.seed)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1, default=str))
        return 0
    specs = select(args)
    random.Random(args.seed).shuffle(specs)     # a run stopped early has covered a random sample
    start = time.perf_counter()
    if args.from_rows:
        rows = [json.loads(line) for line in args.from_rows.read_text().splitlines() if line.strip()]
        done = {(r["type"], r["head"]) for r in rows}
        specs = [s for s in specs if (s.model_type, s.head) not in done]
    else:
        rows = []
    jobs = [(s, args.steps, args.fault_steps, args.seed) for s in specs]
    sink = args.rows.open("a") if args.rows else None
    total = len(rows) + len(jobs)

    def keep(row):
        rows.append(row)
        if sink is not None:
            sink.write(json.dumps(row, default=str) + "\n")
            sink.flush()
        _progress(row, len(rows), total)

    if args.jobs == 1:
        for j in jobs:
            keep(_job(j))
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_job, j) for j in jobs]):
                keep(future.result())
    if sink is not None:
        sink.close()
    seconds = args.wall_seconds if args.wall_seconds is not None else time.perf_counter() - start
    summary = summarize(rows)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
    write_markdown(markdown(rows, summary, args, seconds), args.md)
    print(json.dumps({k: v for k, v in summary.items() if k != "false_alarm_rows"}, indent=1))
    print(f"{seconds:.0f} s; table in {args.md}")
    return 0


def _progress(row: dict, done: int, total: int) -> None:
    h = row["runs"].get("healthy")
    what = (f"{h['loss_first']:.2f}->{h['loss_last']:.2f} checkup={h['checkup']} watch={h['watch']}" if h
            else row["reason"])
    print(f"[{done}/{total}] {row['type']}/{row['head']} {row['status']} {what}", flush=True)
