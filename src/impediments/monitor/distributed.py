"""DDP: every process watches its own shard; ``sync()`` merges all of them on every rank.

The state of each process (its windows of bags: sums, counts, min/max, moments, histograms) is
all-gathered and merged in rank order with the same rules as :meth:`Monitor.merge`, so counts and
histograms are exact and moments are Chan-merged (equal to a single run over the union of the
data up to float rounding). Call it on every rank; ``report()``, ``to_json()`` and ``to_tensorboard()``
act on rank 0 only (elsewhere they return ``None``/0 and write nothing), so N processes never write
the same file; ``stats()`` works on every rank.
"""
from __future__ import annotations

import copy

import torch.distributed as dist

from impediments.monitor.nonfinite import FirstNonFinite
from impediments.monitor.windows import Windows


def merge_states(states: list[dict]) -> dict:
    """Merge :meth:`Monitor.state_dict` outputs of processes (or monitors) over the same steps."""
    if not states:
        raise ValueError("merge_states needs at least one state")
    base = copy.deepcopy(states[0])
    wins = Windows.from_state(base["windows"])
    nf = FirstNonFinite.from_state(base["nonfinite"])
    for other in states[1:]:
        wins.merge(Windows.from_state(other["windows"]))
        nf.merge(FirstNonFinite.from_state(other["nonfinite"]))
        _merge_meta(base["meta"], other["meta"])
        base["sampled_steps"] = max(base["sampled_steps"], other["sampled_steps"])
        base["steps"] = max(base["steps"], other["steps"])
        base["training_forwards"] = max(base["training_forwards"], other["training_forwards"])
    base["windows"], base["nonfinite"] = wins.state(), nf.state()
    return base


def _merge_meta(meta: dict, other: dict) -> None:
    for cat in ("act", "layer", "bn", "rnn", "stream"):
        for name, m in other.get(cat, {}).items():
            mine = meta.setdefault(cat, {}).setdefault(name, copy.deepcopy(m))
            if "units" in m:
                mine["units"] = max(mine["units"], m["units"])
            if m.get("values_per_channel") is not None:
                v = mine.get("values_per_channel")
                mine["values_per_channel"] = m["values_per_channel"] if v is None else min(v, m["values_per_channel"])
    if not meta.get("param_names") and other.get("param_names"):
        meta["param_names"] = other["param_names"]
    if not meta.get("symmetry") and other.get("symmetry"):
        meta["symmetry"] = other["symmetry"]


def is_reporting_rank() -> bool:
    """True outside ``torch.distributed`` and on rank 0: the one process that reports and writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def sync(mon, group=None):
    """All-gather ``mon.state_dict()`` from every rank and load the merge into ``mon`` (all ranks).

    Raises:
        RuntimeError: if ``torch.distributed`` is not initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("Monitor.sync() needs torch.distributed to be initialised (dist.init_process_group)")
    states: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(states, mon.state_dict(), group=group)
    mon.load_state_dict(merge_states(states))
    return mon
