"""Every registered experiment (parts 1 and 2): the contract each experiment module keeps.

Each claim holds at seeds 0, 1 and 2 in quick mode (verdicts recomputed from
the returned numbers); each result round-trips through JSON to the same
claims, tables and a figure; each ``Config`` has distinct quick and full
presets. Runs come from the session-wide ``quick_run`` cache (``conftest.py``)
that the part-specific tests share, so no experiment runs twice.
"""
from __future__ import annotations

import json

import pytest

from impediments import experiments
from impediments.experiments import part1, part2
from impediments.experiments.framework import from_jsonable, to_jsonable

NAMES = experiments.names()
SEEDS = (0, 1, 2)


def _names(part) -> list[str]:
    return [p.rsplit(".", 1)[-1] for p in part.EXPERIMENTS]


def test_registry_lists_both_parts_in_story_order():
    # an empty registry would leave every test below with no parameters: fail here instead
    assert _names(part1) and _names(part2), "both parts register experiments"
    assert NAMES == _names(part1) + _names(part2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NAMES)
def test_claims_hold(quick_run, name, seed):
    module, result = quick_run(name, seed)
    claims = module.claims(result)
    assert claims, f"{name} makes no claims"
    failed = [f"{c.text} [{c.threshold}; {c.measured}]" for c in claims if not c.passed]
    assert not failed, f"{name} seed {seed}: " + " | ".join(failed)
    for c in claims:
        assert c.measured and all(isinstance(v, (int, float, bool)) for v in c.measured.values())


@pytest.mark.parametrize("name", NAMES)
def test_result_roundtrips_through_json_and_plots(quick_run, name):
    import matplotlib.pyplot as plt

    module, result = quick_run(name, 0)
    data = json.loads(json.dumps(to_jsonable(result), allow_nan=False))
    back = from_jsonable(module.Result, data)
    assert [c.to_dict() for c in module.claims(back)] == [c.to_dict() for c in module.claims(result)]
    if hasattr(module, "tables"):
        assert all(t.rows for t in module.tables(back))
    fig, axes = module.plot(back)
    assert fig.get_axes()
    plt.close(fig)


@pytest.mark.parametrize("name", NAMES)
def test_config_presets(name):
    module = experiments.get(name)
    q, f = module.Config.quick(3), module.Config.full(3)
    assert q.seed == f.seed == 3 and q != f
    assert module.NAME == name and module.SECTION and module.DESCRIPTION
    assert "matplotlib" not in vars(module)
