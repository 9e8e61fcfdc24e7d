"""Rich display in Jupyter (issue 27 item 2): HTML for reports, statistics, fix reports and claims, and the
live view that redraws one output area, checked on a real ipykernel through nbclient."""
from __future__ import annotations

import re

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from torch import nn

from impediments import watch
from impediments.doctor import diagnose
from impediments.experiments.claims import claim
from impediments.fix.report import FixReport
from impediments.report import display as D
from impediments.report.feed import COST_FACTOR

LIVE_CELL = """
import time, torch, impediments as imp
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
with torch.no_grad():
    model[0].weight.mul_(40)          # tanh inputs far in its flat tails
opt = torch.optim.SGD(model.parameters(), lr=0.05)
X, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
start = time.monotonic()
with imp.watch(model, optimizer=opt, every=1) as mon:
    feed = mon.display()
    for _ in range(30):
        opt.zero_grad(); nn.functional.cross_entropy(model(X), y).backward(); opt.step()
elapsed = time.monotonic() - start
"""


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LIVE_CELL),
                nbformat.v4.new_code_cell("print(feed.updates, feed.cost_s - sum(feed.recent_costs), elapsed, mon.steps)"),
                nbformat.v4.new_code_cell("mon.report()"),
                nbformat.v4.new_code_cell("mon.stats()"),
                nbformat.v4.new_code_cell("from impediments.experiments.claims import claim\n"
                                          "claim('sigmoid peaks at 1/4', 'closed form', {'peak': 0.25}, "
                                          "'peak >= 0.25', paper='1/4')")]
    NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=False).execute()
    return nb


def _html(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


def test_live_view_redraws_one_output_area_in_place_within_its_cost_bound(executed):
    live = _html(executed.cells[0])
    assert len(live) == 1, "one output area, updated in place"
    assert "done" in live[0] and "Tanh" in live[0] and "saturated_units" in live[0]
    updates, cost, elapsed, steps = executed.cells[1].outputs[0]["text"].split()
    assert int(updates) >= 2 and int(steps) == 30
    # every update before the last one while training was followed by its whole wait of COST_FACTOR times its
    # cost before the next began (the last one's wait may be cut short by the end of training, and the final
    # draw at close has none): those updates cost at most 1/COST_FACTOR of the time
    assert float(cost) <= float(elapsed) / COST_FACTOR


def test_report_stats_and_claims_display_as_html_in_the_kernel(executed):
    report, = _html(executed.cells[2])
    assert "<table" in report and "saturated_units" in report and "what to do" in report
    stats, = _html(executed.cells[3])
    assert re.search(r"Tanh</td>.*saturated", stats) and re.search(r"ReLU</td>.*inactive", stats)
    one, = _html(executed.cells[4])
    assert "holds" in one and "1/4" in one and "0.25" in one


def test_renderers_in_process_escape_and_agree_with_the_doctor():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid(), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].weight.mul_(50)
    with watch(model, every=1) as mon:
        for _ in range(3):
            model(torch.randn(32, 4)).pow(2).mean().backward()
    stats = mon.stats()
    report = diagnose(stats)
    html = D.report_html(report)
    assert all(f.code in html for f in report.findings) and "<script" not in html
    frac = stats.activations["1"].saturated_fraction
    assert f"{frac:.3g} saturated" in D.stats_html(stats)
    bad = claim("a <b> claim", "x & y", {"v": 1.0}, "v > 2")
    assert "&lt;b&gt;" in D.claim_html(bad) and "fails" in D.claim_html(bad)
    typeset = D.claim_html(claim("He keeps :math:`n \\mathrm{Var}(W) = 2`", "He et al.", {"v": 2.0}, "v > 1"))
    assert ":math:" not in typeset and '<img class="math"' in typeset and "data:image/svg+xml" in typeset
    empty = FixReport(title="fix", settings={}, baseline=[], flagged=[])
    assert "nothing flagged" in D.fix_html(empty)


def test_register_is_a_no_op_outside_ipython_and_live_rejects_unknown_values():
    import sys

    if "IPython" not in sys.modules or sys.modules["IPython"].get_ipython() is None:
        assert D.register() is False
    with pytest.raises(ValueError, match="'notebook'"):
        watch(nn.Linear(2, 2), live="notebok")
