"""DDP: every process watches its own shard; ``sync()`` merges all of them on every rank.

The state of each process (its windows of bags: sums, counts, min/max, moments, histograms) is
all-gathered and merged in rank order with the same rules as :meth:`Monitor.merge`, so counts and
histograms are exact and moments are Chan-merged (equal to a single run over the union of the
data up to float rounding). Call it on every rank; ``report()``, ``to_json()`` and ``to_tensorboard()``
act on rank 0 only (elsewhere they return ``None``/0 and write nothing), so N processes never write
the same file; ``stats()`` works on every rank.
"""
from __future__ import annotations

import torch.distributed as dist

from impediments.monitor.monitor import merge_states


def is_reporting_rank() -> bool:
    """True outside ``torch.distributed`` and on rank 0: the one process that reports and writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


__all__ = ["is_reporting_rank", "merge_states", "sync"]


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
