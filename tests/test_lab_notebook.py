"""The lab notebook reads like one (issue 27 item 3): an exact fact once, as exact; captions say what is drawn."""
from __future__ import annotations

import math

from impediments.experiments.claims import claim
from impediments.experiments.runner import Outcome
from impediments.experiments.verdict import over_seeds
from impediments.report.notebook import caption, exact_value, render_notebook


def outcome(claims_by_seed, *, band: bool) -> Outcome:
    return Outcome(name="toy", description="a toy", section="Part 1", seeds=sorted(claims_by_seed), configs={},
                   result={}, claims=over_seeds(claims_by_seed), tables=[], png=b"\x89PNG fake", elapsed_s=1.0,
                   cached=False, band=band)


def test_exact_value_is_one_value_up_to_float_rounding_only():
    assert exact_value([0.25, 0.25, 0.25]) == 0.25
    assert exact_value([0.25, 0.25 * (1 + 1e-15), 0.25]) == 0.25          # rounding, not a spread
    assert exact_value([0.25, 0.2500001]) is None
    assert exact_value([math.inf, math.inf]) == math.inf and exact_value([math.inf, 1.0]) is None
    assert exact_value([0.0, 0.0]) == 0.0 and exact_value([0.0, 1e-300]) is None


def test_an_exact_fact_is_shown_once_without_interval_or_effect_size():
    # sigmoid's peak derivative: 1/4 at every seed, to rounding (once read "d = 2.2e13")
    peak = {s: [claim("sigmoid's derivative peaks at 1/4", "closed form", {"peak": 0.25 + s * 1e-17},
                      "peak >= 0.249")] for s in range(5)}
    html = render_notebook([outcome(peak, band=False)], quick=True, seeds=range(5))
    section = html.split("<h3")[-1]
    assert "exact: the same at every one of the 5 seeds" in section and "(exact: every seed)" in section
    assert "effect size d" not in section and "±" not in section.split("</thead>")[-1]
    spread = {s: [claim("noisy", "x", {"acc": 0.9 + 0.01 * s}, "acc >= 0.5")] for s in range(5)}
    html = render_notebook([outcome(spread, band=False)], quick=True, seeds=range(5))
    assert "effect size d =" in html.split("<h3")[-1] and "exact: the same" not in html


def test_caption_says_whether_the_figure_draws_a_band():
    c = {s: [claim("t", "x", {"v": 1.0 + s}, "v > 0")] for s in range(3)}
    assert "shaded band" in caption(outcome(c, band=True))
    assert "no band" in caption(outcome(c, band=False)) and "shaded band" not in caption(outcome(c, band=False))
    from impediments import experiments
    from impediments.experiments.figures import takes_band

    drawn = sorted(n for n in experiments.names() if takes_band(experiments.get(n)))
    assert drawn == ["bn_dropout", "small_batch_norms", "zigzag"]


def test_a_legend_that_would_cover_data_moves_beside_the_panel():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from impediments.plots.style import _points_under, legend_off_data

    fig, (full, sparse) = plt.subplots(1, 2)
    x = np.linspace(0, 1, 41)
    for k in range(12):                                       # lines everywhere: no free corner inside
        full.plot(x, (x + k / 12) % 1, ".", label=f"line {k}" if k < 4 else None)
    sparse.plot([0, 1], [0, 0.05], label="low")               # an empty upper area: the legend stays inside
    inside = sparse.legend(loc="upper right")
    renderer = fig.canvas.get_renderer()
    assert _points_under(full, full.legend(loc="center").get_window_extent(renderer)) > 0   # the reference
    moved, kept = legend_off_data(full, loc="center"), legend_off_data(sparse, loc="upper right")
    assert _points_under(full, moved.get_window_extent(renderer)) == 0 and moved.get_bbox_to_anchor().x0 > \
        full.get_window_extent(renderer).x1
    assert _points_under(sparse, kept.get_window_extent(renderer)) == 0 and inside is not None
    plt.close(fig)
