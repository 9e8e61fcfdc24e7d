"""What the checkup's init-time gradient comparison sees on a transformers model: the numbers behind each
false alarm of the sweep (``hf_sweep.md``, "Mechanisms").

Usage (from the repository root)::

    python -m calibration.hf_mechanisms TYPE[:HEAD][@std1] ...     # with benchmarks/ on sys.path

For each type (healthy, as built) it runs ``imp.checkup`` on the sweep's first batch and prints, in the
order the rule ``gradient_variance_with_depth`` uses them (by depth, head and BatchNorm-fed layers left
out), every layer's back-propagated gradient energy ``n_l Var(dL/dz_l)`` (``grad_var * output.count``),
the least-squares geometric ratio last/first, and the same ratio with the attention query/key
projections or the expert/router layers left out; then the residual-stream chains by block shape.
It reads the checkup's ``Report.stats`` only: nothing in ``src/`` is changed or monkey-patched.
"""
from __future__ import annotations

import json
import math
import re
import sys

import torch

import impediments as imp

from . import hf_models, hf_sweep

QUERY_KEY = hf_models.QUERY_KEY
ROUTED = re.compile(r"(experts|router|gate$|shared_expert)")


def _ratio(values: list[float]) -> float | None:
    values = [max(v, 1e-45) for v in values]
    if len(values) < 2:
        return None
    n = len(values)
    logs = [math.log(v) for v in values]
    xbar, ybar = (n - 1) / 2, sum(logs) / n
    b = sum((x - xbar) * (y - ybar) for x, y in enumerate(logs)) / sum((x - xbar) ** 2 for x in range(n))
    return math.exp(b * (n - 1))


def chain(stats) -> list[tuple[str, float, int, int | None]]:
    """``(name, energy, output count, depth)`` along the body, as the depth rule builds it."""
    from impediments.doctor.rules.base import by_depth, finite
    from impediments.doctor.rules.gradients import batchnorm_fed, head_layers

    skip = head_layers(stats.layers) | batchnorm_fed(stats)
    return [(n, float(l.grad_var) * max(l.output.count, 1), l.output.count, l.depth) for n, l in by_depth(stats.layers)
            if finite(l.grad_var) and n not in skip]


def explain(model_type: str, show: int = 60) -> dict:
    """Print and return the checkup's gradient chains for ``model_type`` at its own init."""
    model_type, _, fault = model_type.partition("@")
    model_type, _, head = model_type.partition(":")
    specs = hf_models.specs(all_heads=True, types=[model_type])
    spec = next(s for s in specs if s.head == head) if head else specs[0]
    model, _ = hf_sweep.build_faulty(spec, fault or None)
    first = next(hf_models.batches(hf_models.make_data(spec.head)))
    report = imp.checkup(model, first, loss_fn=lambda out: out.loss)
    stats = report.stats
    rows = chain(stats)
    energies = [e for _, e, _, _ in rows]
    no_qk = [e for n, e, _, _ in rows if not QUERY_KEY.search(n)]
    no_routed = [e for n, e, _, _ in rows if not ROUTED.search(n)]
    no_both = [e for n, e, _, _ in rows if not QUERY_KEY.search(n) and not ROUTED.search(n)]
    out = {"type": model_type, "verdict": hf_sweep.verdict(report), "layers": len(rows),
           "ratio": _ratio(energies), "ratio_without_query_key": _ratio(no_qk),
           "ratio_without_routed": _ratio(no_routed), "ratio_without_both": _ratio(no_both)}
    shown = {k: "-" if out[k] is None else f"{out[k]:.3g}" for k in out if k.startswith("ratio")}
    print(f"== {spec.model_type} ({spec.head}{', ' + fault if fault else ''}): checkup {out['verdict'] or 'quiet'}; {len(rows)} layers; last/first "
          f"trend {shown['ratio']}; without q/k {shown['ratio_without_query_key']}; without routed "
          f"{shown['ratio_without_routed']}; without both {shown['ratio_without_both']}")
    for f in report.findings:
        if f.severity in ("warning", "error"):
            ev = {k: v for k, v in f.evidence.items() if not isinstance(v, dict)}
            print(f"   finding {f.code} ({f.severity}) {ev}")
    for name, energy, count, depth in rows[:show]:
        tag = " q/k" if QUERY_KEY.search(name) else (" routed" if ROUTED.search(name) else "")
        print(f"   {depth!s:>4} {name:<60} energy {energy:10.3e}  count {count}{tag}")
    for name, s in list(stats.residual_stream.items())[:show]:
        print(f"   stream {s.depth!s:>4} {name:<50} shape {list(s.shape)} grad_ms {s.grad_mean_square:.3e}")
    return out


def main(argv: list[str]) -> int:
    hf_sweep._quiet()
    torch.set_num_threads(1)
    for t in argv:
        explain(t)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
