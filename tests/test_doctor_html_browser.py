"""doctor.html in a real browser (issue 28 item 3): Playwright driving Debian's chromium (never ``playwright
install``) opens the report of the saturated, dead and diverging examples, checks that every figure loads and
that each signature is in the numbers drawn, and writes the screenshots docs/doctor.md shows
(docs/screenshots/doctor-*.png: the finding that names the signature beside the figure that shows it)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from impediments.report import render_doctor_html

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
#: example -> (the finding that names the signature, the figure that shows it, the screenshot)
CASES = {"saturated_sigmoid": ("saturated_units", "activation distributions", "doctor-saturated.png"),
         "dead_relu": ("dead_units", "activation distributions", "doctor-dead.png"),
         "diverging_lr": ("exploding_gradients", "loss curve", "doctor-diverging.png")}


def _report(example: str):
    """``impediments doctor examples/EXAMPLE.py --steps 60``, in process."""
    from impediments.cli.spec import build_data, load_spec, spec_setup, train_under_monitor

    torch.manual_seed(0)
    spec = load_spec(ROOT / "examples" / f"{example}.py")
    X, y = build_data(spec)
    report = train_under_monitor(spec_setup(spec, X, y, steps=60, batch_size=64), seed=0).report()
    report.title = f"impediments doctor examples/{example}.py (60 steps)"
    return report


def _signature(example: str, stats) -> None:
    """The signature each screenshot must show, in the numbers the figure draws."""
    if example == "saturated_sigmoid":              # piles at 0 and 1 in the linear bins of every sigmoid layer
        for a in stats.activations.values():
            lin = a.linear_histogram
            assert (lin.counts[0] + lin.counts[-1]) / sum(lin.counts) > 0.4, a.name
    elif example == "dead_relu":                    # the first ReLU layer outputs exact zeros
        counts = stats.activations["hidden1.act"].histogram.counts
        assert counts[len(counts) // 2] / sum(counts) > 0.99
    else:                                           # the loss grows by orders of magnitude, then turns non-finite
        assert stats.loss.first_nonfinite_step is not None
        finite = [w.loss_mean for w in stats.windows if w.loss_mean is not None and w.loss_mean == w.loss_mean]
        assert max(finite) > 1e3 * finite[0]


@pytest.mark.parametrize("example", sorted(CASES))
def test_doctor_html_shows_each_signature_in_chromium(browser, example, tmp_path):
    code, figure, shot = CASES[example]
    report = _report(example)
    _signature(example, report.stats)
    assert code in report.codes
    path = tmp_path / "doctor.html"
    render_doctor_html(report, path)
    page = browser.new_page(viewport={"width": 1150, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    assert page.evaluate("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".finding").count() == len(report.findings)
    assert page.locator(f'.finding[data-code="{code}"]').count() >= 1
    assert page.locator(f'img[alt="{figure}"]').count() == 1
    # the picture: the title, the finding that names the signature and the figure that shows it
    page.evaluate("""([code, figure]) => {
        const keep = new Set([document.querySelector('h1'), document.querySelector(`.finding[data-code="${code}"]`),
                              document.querySelector(`img[alt="${figure}"]`).parentElement]);
        for (const el of Array.from(document.body.children)) if (!keep.has(el)) el.style.display = 'none';
    }""", [code, figure])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    page.close()
    assert not errors, errors
