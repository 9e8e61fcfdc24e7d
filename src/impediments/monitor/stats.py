"""From accumulated state to :class:`~impediments.monitor.schema.MonitorStats` (the only host sync)."""
from __future__ import annotations

import math

import torch

from impediments.monitor import schema as S
from impediments.monitor.symmetry import groups
from impediments.monitor.histogram import HIST_BINS, HIST_EDGES
from impediments.monitor.moments import empty_moments, moments_dict

NAN = float("nan")


def _moments(bag, field) -> S.MomentStats:
    return S.MomentStats(**moments_dict(bag.t.get(field, empty_moments())))


def _unit_regions(meta, bag):
    """Per-unit ``[saturated, linear, active]`` counts ``(3, units)`` on the host, or None."""
    from impediments.activations.unit_regions import regions_from_cut_counts
    from impediments.monitor.collectors import region_kind

    cuts, rkind = bag.t.get("cuts"), region_kind(meta["kind"])
    if cuts is None or rkind is None:
        return None
    return regions_from_cut_counts(cuts.cpu(), bag.ints.get("unit_total", 0), rkind)


def _activation(name, meta, bag) -> S.ActivationStats:
    hist = bag.t.get("hist")
    counts = hist.cpu().tolist()[:HIST_BINS] if hist is not None else [0] * HIST_BINS
    sat = lin = act = NAN
    unit_counts = None
    r = _unit_regions(meta, bag)
    if r is not None:
        unit_counts = [int(c) for c in (r[1] + r[2]).tolist()]
        total = float(r.sum())
        if total > 0 and meta.get("regions", True):
            sat, lin, act = (r.sum(1) / total).tolist()
    return S.ActivationStats(
        name=name, kind=meta["kind"], depth=meta["depth"], samples=bag.ints.get("samples", 0),
        output=_moments(bag, "output"), input=_moments(bag, "input"),
        histogram=S.Histogram(edges=list(HIST_EDGES), counts=[int(c) for c in counts]),
        saturated_fraction=sat, linear_fraction=lin, active_fraction=act, units=meta["units"],
        unit_active_counts=unit_counts, unit_total=bag.ints.get("unit_total", 0),
        dead_units=[i for i, c in enumerate(unit_counts) if c == 0] if unit_counts is not None else [],
        values_per_example=meta.get("values_per_example", 0), gate=bool(meta.get("gate", False)))


def _layer(meta, bag) -> S.LayerOutputStats:
    grad = bag.t.get("grad")
    grad_var = moments_dict(grad)["var"] if grad is not None else None
    return S.LayerOutputStats(depth=meta["depth"], kind=meta["kind"], output=_moments(bag, "output"),
                              grad_var=grad_var, positions=meta.get("positions", 0))


def _params(mon, bag) -> dict:
    names = mon.meta.get("param_names") or []
    if bag is None or not names:
        return {}
    get = {k: v.cpu().tolist() for k, v in bag.t.items()}
    zeros = [0.0] * len(names)
    gnorm, g2w, gcount = get.get("grad", [zeros, zeros, zeros])
    u2w, ucount = get.get("update", [zeros, zeros])
    out = {}
    for i, n in enumerate(names):
        c, uc = int(gcount[i]), ucount[i]
        out[n] = S.ParamStats(
            module=n.rsplit(".", 1)[0] if "." in n else "", samples=c,
            grad_norm=gnorm[i] / c if c else NAN, grad_norm_max=get["gmax"][i] if c else NAN,
            weight_norm=get["wnorm"][i] if c else NAN, grad_to_weight=g2w[i] / c if c else NAN,
            update_to_weight=u2w[i] / uc if uc else NAN)
    return out


def _batchnorm(mon, name, meta, bag) -> S.BatchNormStats:
    dev = ratio = None
    if bag is not None and "running_dev" in bag.t and bag.ints.get("compared"):
        dev, ratio = (bag.t["running_dev"].cpu() / bag.ints["compared"]).tolist()
    wd = None
    feeding = meta.get("feeding_layer")
    opt = mon.meta.get("optimizer")
    if feeding is not None and opt:
        for g in opt["groups"]:
            if f"{feeding}.weight" in g.get("params", []):
                wd = float(g.get("weight_decay", 0.0))
    ints = bag.ints if bag is not None else {}
    return S.BatchNormStats(
        kind=meta["kind"], values_per_channel=meta.get("values_per_channel") or 0,
        training_forwards=ints.get("training_forwards", 0),
        running_stats_forwards_in_training=ints.get("running_forwards", 0), frozen=bool(meta.get("frozen")),
        preceded_by=meta.get("preceded_by"), preceded_by_name=meta.get("preceded_by_name"), feeding_layer=feeding,
        feeding_weight_decay=wd, batch_mean_vs_running=dev, batch_var_vs_running=ratio,
        examples_per_batch=meta.get("examples_per_batch") or 0)


def _inputs(bag, shape=None) -> S.InputStats | None:
    if bag is None or "x" not in bag.t:
        return None
    m = bag.t["x"].cpu()
    n = m[0]
    return S.InputStats(count=int(n.max()), mean=m[1].tolist(), var=(m[2] / n.clamp_min(1)).tolist(),
                        min=m[3].tolist(), max=m[4].tolist(), shape=list(shape or []))


def _loss(windows) -> S.LossStats | None:
    bags = [(st[("loss", "")]) for _, _, st in windows if ("loss", "") in st]
    if not bags:
        return None
    total = bags[0].copy()
    for b in bags[1:]:
        total.merge(b)
    means = [b.get("sum") / b.ints["count"] for b in bags]
    return S.LossStats(count=total.ints["count"], first=total.get("first"), last=total.get("last"),
                       min=total.get("min"), window_means=means, first_nonfinite_step=None)


def _window(mon, start, end, st) -> S.Window:
    lb = st.get(("loss", ""))
    w = S.Window(start_step=start, end_step=end, loss_mean=lb.get("sum") / lb.ints["count"] if lb else None)
    for (cat, name), b in st.items():
        if cat == "act":
            w.activation_var[name] = moments_dict(b.t["output"])["var"] if "output" in b.t else NAN
            if "hist" in b.t:
                w.histograms[name] = [int(c) for c in b.t["hist"].cpu().tolist()[:HIST_BINS]]
            meta = mon.meta["act"].get(name, {"kind": ""})
            r = _unit_regions(meta, b)
            if r is not None:
                silent = ((r[1] + r[2]) == 0)
                w.dead_fraction[name] = float(silent.double().mean())
                w.unit_values[name] = b.ints.get("unit_total", 0)
                w.silent_units[name] = silent.nonzero().flatten().tolist()
                total = float(r.sum())
                if total > 0 and meta.get("regions", True):
                    w.region_fractions[name] = (r.sum(1) / total).tolist()
    pb = st.get(("params", ""))
    if pb is not None and "grad" in pb.t:
        g, _, c = pb.t["grad"].cpu().tolist()
        for n, gi, ci in zip(mon.meta.get("param_names") or [], g, c):
            if ci:
                w.grad_norm[n] = gi / ci
    if pb is not None and "update" in pb.t:
        u, c = pb.t["update"].cpu().tolist()
        for n, ui, ci in zip(mon.meta.get("param_names") or [], u, c):
            if ci:
                w.update_to_weight[n] = ui / ci
    return w


def _recurrent(meta, bag) -> S.RecurrentStats:
    """Mean gradient energy per step back over the sampled forwards that reached it, relative to k = 0."""
    energy, seen = bag.t["energy"].cpu(), bag.t["seen"].cpu()
    mean = (energy / seen.clamp_min(1)).tolist()
    base = mean[0] if mean and mean[0] > 0 else float("nan")
    return S.RecurrentStats(kind=meta["kind"], samples=bag.ints.get("samples", 0),
                            energy_by_steps_back=[m / base for m in mean], sequences=[int(c) for c in seen.tolist()])


def _stream(meta, bag) -> S.ResidualStreamStats:
    values = bag.ints.get("values", 0)
    sumsq = float(bag.t["sumsq"].cpu()[0]) if "sumsq" in bag.t else NAN
    return S.ResidualStreamStats(depth=meta["depth"], shape=list(meta["shape"]), samples=bag.ints.get("samples", 0),
                                 grad_mean_square=sumsq / values if values else NAN)


def compute(mon) -> S.MonitorStats:
    if mon._params is not None:
        mon._params.flush()
    windows = mon.windows.all()
    total = mon.windows.total()
    meta = mon.meta
    first = mon.nonfinite.result()
    loss = _loss(windows)
    if loss is not None:
        lstep = mon.nonfinite.step_of("loss")
        if lstep is not None:
            loss.first_nonfinite_step = lstep
        elif first is not None and first[1] == "loss":
            loss.first_nonfinite_step = first[0]
    return S.MonitorStats(
        schema_version=S.SCHEMA_VERSION, steps=mon.steps, sampled_steps=mon.sampled_steps,
        model_training_steps=mon.training_forwards,
        activations={n: _activation(n, m, total[("act", n)]) for n, m in meta["act"].items() if ("act", n) in total},
        layers={n: _layer(m, total[("layer", n)]) for n, m in meta["layer"].items() if ("layer", n) in total},
        params=_params(mon, total.get(("params", ""))),
        symmetry=groups(mon._sym) if mon._sym else {n: S.SymmetryStats(**d)
                                                       for n, d in meta.get("symmetry", {}).items()},
        batchnorm={n: _batchnorm(mon, n, m, total.get(("bn", n))) for n, m in meta["bn"].items()},
        inputs=_inputs(total.get(("input", "")), meta.get("input_shape")), loss=loss,
        nonfinite=S.NonFinite(step=first[0], kind=first[1], where=first[2]) if first else None,
        windows=[_window(mon, s, e, st) for s, e, st in windows], optimizer=meta.get("optimizer"),
        not_checked=dict(meta.get("not_checked", {})),
        recurrent={n: _recurrent(m, total[("rnn", n)]) for n, m in meta.get("rnn", {}).items() if ("rnn", n) in total},
        mode=S.ModeStats(**meta["mode"]) if meta.get("mode") else None,
        residual_stream={n: _stream(m, total[("stream", n)]) for n, m in meta.get("stream", {}).items()
                         if m["residual"] and ("stream", n) in total})


def finite_or_none(x):
    return x if isinstance(x, float) and math.isfinite(x) else None


__all__ = ["compute", "torch"]
