"""A doctor.html a person can read (issue 28 item 3): evidence as a sentence plus small tables, histograms on the
scale that shows each activation's signature, colour ranges that mean something, no empty panels; and the
terminal promises no JSON that was not asked for."""
from __future__ import annotations

import re
from html import unescape

import numpy as np
import pytest
import torch
from torch import nn

from impediments.doctor import diagnose
from impediments.doctor.finding import Finding, Report
from impediments.doctor.terminal import MAX_WHERE, render_text
from impediments.monitor import Monitor
from impediments.monitor.state.histogram import LINEAR_BINS, histogram_subsample
from impediments.report import doctor_html
from test_doctor_rules import _make, act, loss, stats


def test_evidence_is_a_sentence_and_small_tables_never_a_dict_dump():
    layers = {f"h{i}.act": {"dead_fraction": 1.0, "dead_units": 64, "units": 64, "kind": "relu",
                            "window": [3, 4], "nested": {"x": 1}} for i in range(9)}
    evidence = {"max_dead_fraction": 1.0, "threshold_warning": 0.25, "layers": layers,
                "gain_by_layer": {"h0.linear": 2.01, "h1.linear": 1.98},
                "seen": {"examples": 704, "sampled_steps": 11},
                "confidence": "each layer's dead count has a chance probability below 0.01"}
    html = doctor_html.evidence_html(evidence, {})
    sentence = unescape(re.search(r"<p><b>Evidence\.</b> (.*?)</p>", html).group(1))
    assert sentence.startswith("Each layer's dead count has a chance probability below 0.01.")
    assert "(seen: 704 examples, 11 sampled steps)" in sentence
    assert "{" not in html and "}" not in html                         # no nested dict printed
    # the numbers, one row per layer with its numbers as columns (at most MAX_ROWS rows, the rest counted)
    assert "<td>max dead fraction</td><td>1</td>" in html
    assert "<th>layer</th><th>dead fraction</th><th>dead units</th><th>units</th>" in html
    assert html.count("<td>h") == doctor_html.MAX_ROWS + 2 and "+3 more" in html   # 6 of 9 layers, 2 gains
    assert "<th>gain by layer</th>" in html and "<td>2.01</td>" in html


def test_a_finding_reads_as_a_card_with_its_cause_its_fix_and_its_experiment_once():
    f = Finding("vanishing_activations", "warning", ["h.act"], {"confidence": "a trend"}, "why it happens",
                "Caused by dead_units (reported above); fix that first: zero the biases. Then, if it remains: "
                "normalize; see: impediments reproduce depth_distributions", caused_by="dead_units")
    card = doctor_html.finding_card(f, {})
    assert 'class="finding sev-warning"' in card and "caused by <code>dead_units</code>" in card
    assert card.count("see: impediments reproduce depth_distributions") == 1
    assert "<b>Fix.</b> Caused by dead_units" in card and "<b>Why.</b> why it happens" in card


def _sigmoid_stats():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.Sigmoid(), nn.Linear(32, 4))
    nn.init.normal_(net[0].weight, std=3.0)
    outputs = []
    net[1].register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    with Monitor(net, optimizer=opt) as mon:
        for _ in range(3):
            x = torch.randn(64, 16)
            loss_ = net(x).logsumexp(1).mean()
            opt.zero_grad()
            loss_.backward()
            opt.step()
    return mon.stats(), outputs


def test_bounded_activations_are_counted_in_linear_bins_against_brute_force_and_drawn_on_them():
    s, outputs = _sigmoid_stats()
    [a] = s.activations.values()
    lin = a.linear_histogram
    assert lin is not None and lin.edges[0] == 0.0 and lin.edges[-1] == 1.0 and len(lin.counts) == LINEAR_BINS
    # brute force: every recorded forward's subsample counted in numpy's equal bins over [0, 1]
    expected = sum(np.histogram(histogram_subsample(o).numpy(), bins=LINEAR_BINS, range=(0.0, 1.0))[0]
                   for o in outputs[:a.samples])
    assert lin.counts == expected.tolist()
    assert sum(lin.counts) == sum(a.histogram.counts)                  # the same subsample as the signed-log one
    # the saturated signature: piles at 0 and 1, the two end bins the largest
    assert sorted(lin.counts)[-2:] == sorted([lin.counts[0], lin.counts[-1]])
    from matplotlib.figure import Figure

    assert doctor_html._histogram_panel(Figure().add_subplot(), a) == "linear"
    relu = act("r", kind="relu")
    assert relu.linear_histogram is None and doctor_html._histogram_panel(Figure().add_subplot(), relu) == "signed-log"


def test_colour_ranges_mean_something():
    # a log10 spread of 0.025 decades is noise: the range is widened to MIN_DECADES about its middle
    lo, hi = doctor_html._colour_range([[-0.70, -0.675], [-0.69, float("nan")]], log=True)
    assert hi - lo == pytest.approx(doctor_html.MIN_DECADES) and lo < -0.70 and hi > -0.675
    assert doctor_html._colour_range([[-3.0, 4.0]], log=True) == (-3.0, 4.0)
    assert doctor_html._colour_range([[0.01, 0.02]], log=False) == (0.0, 1.0)     # a fraction: 0 to 1


def _captured(monkeypatch) -> dict:
    drawn = {}

    def capture(fig, alt):
        drawn[alt] = fig
        return f'<img alt="{alt}">'

    monkeypatch.setattr(doctor_html, "_img", capture)
    return drawn


def test_no_empty_panels_and_a_flat_loss_is_drawn_flat(monkeypatch):
    drawn = _captured(monkeypatch)
    windows = [_make("Window", start_step=i * 10, end_step=i * 10 + 10, loss_mean=2.302 + 1e-4 * (i % 2),
                     activation_var={"a": 1.0}, dead_fraction={"a": 0.0}, grad_norm={"w": 0.1}) for i in range(6)]
    s = stats(activations={"a": act("a", sat=0.0)}, loss=loss([2.302, 2.3021] * 3, count=60), windows=windows)
    html = doctor_html.render_report(diagnose(s))
    # every dead and saturated fraction 0: one line, no empty bar chart; no silent-units panel under dead_warning
    assert "dead and saturated fractions by layer: 0 in each of the 1 layers judged" in html
    assert "dead and saturated fractions" not in drawn
    titles = [ax.get_title() for ax in drawn["history"].axes if ax.get_title()]
    assert not any("silent" in t for t in titles) and len(titles) == 2
    # a loss at 2.302 +- 1e-4 on an axis from 0: flat, not its noise magnified
    ax = drawn["loss curve"].axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0.0
    diverging = stats(loss=loss([2.3, 40.0, 900.0], count=60))
    doctor_html.render_report(diagnose(diverging))
    assert drawn["loss curve"].axes[0].get_yscale() == "log"


def test_the_terminal_names_the_layers_it_leaves_out_and_promises_no_json():
    layers = {f"hidden{i}.act": {"saturated_fraction": 0.6} for i in range(MAX_WHERE + 2)}
    f = Finding("saturated_units", "warning", list(layers), {"layers": layers}, "why", "fix")
    text = render_text(Report([f]), width=200)
    assert "JSON report" not in text
    left_out = ", ".join(list(layers)[MAX_WHERE:])
    assert f"(+2 more layers, numbers not shown here: {left_out}; --json or --html lists every layer)" in text


def test_an_activation_with_every_value_in_one_bin_gets_no_panel_over_time(monkeypatch):
    drawn = _captured(monkeypatch)
    windows = [_make("Window", start_step=i * 10, end_step=i * 10 + 10, loss_mean=2.3,
                     histograms={"zero": [0, 9], "spread": [4, 5 + i]}) for i in range(3)]
    s = stats(activations={"zero": act("zero"), "spread": act("spread", depth=1)}, windows=windows)
    doctor_html.distributions_over_time(s)
    titles = [ax.get_title() for ax in drawn["distributions over time"].axes if ax.get_title()]
    assert len(titles) == 1 and titles[0].startswith("spread")
    one_bin = stats(activations={"zero": act("zero")}, windows=windows)
    assert doctor_html.distributions_over_time(one_bin) is None
