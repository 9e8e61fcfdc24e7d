"""The lab notebook reads like one (issue 27 item 3): an exact fact once, as exact; captions say what is drawn."""
from __future__ import annotations

import math

from impediments.experiments.claims import claim
from impediments.experiments.runner import Outcome
from impediments.experiments.verdict import over_seeds
from impediments.report.markup import to_html
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


# ---------------------------------------------------------------- formulas typeset, offline (issue 27 item 3)

import re  # noqa: E402

#: LaTeX left in the page's text (outside the drawn math), and formulas written in Unicode that a story should
#: typeset instead; mathtext failures fall back to <code> holding the TeX, which the backslash catches
RAW_TEX = re.compile(r"_\{|\^\{|\\[A-Za-z]+|:math:`")
UNICODE_FORMULA = re.compile(r"√|‖|Var\(|E\[")


def visible_text(html: str) -> str:
    """The page's text as a reader sees it: drawn math (img, whose alt holds the TeX) and inline SVG left out."""
    import html as html_lib

    html = re.sub(r"<img[^>]*>", " ", html)
    html = re.sub(r"<svg.*?</svg>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


def raw_tex(html: str) -> list[str]:
    text = visible_text(html)
    return [text[max(m.start() - 40, 0):m.end() + 20] for m in RAW_TEX.finditer(text)]


def test_the_raw_tex_check_can_fail():
    bad = {0: [claim("Var(y_{l-1}) grows", "x", {"v": 1.0}, "v > 0")]}
    assert raw_tex(render_notebook([outcome(bad, band=False)], quick=True, seeds=[0]))
    good = {0: [claim("Var grows as :math:`\\mathrm{Var}(y_{l-1})`", "x", {"v": 1.0}, "v > 0")]}
    html = render_notebook([outcome(good, band=False)], quick=True, seeds=[0])
    assert not raw_tex(html) and 'class="math"' in html and "data:image/svg+xml;base64," in html
    broken = {0: [claim("undrawable :math:`\\notacommand{x}`", "x", {"v": 1.0}, "v > 0")]}
    assert raw_tex(render_notebook([outcome(broken, band=False)], quick=True, seeds=[0])), "mathtext fallback"


def test_every_formula_in_the_lab_notebook_is_typeset(quick_run):
    """The whole notebook (every experiment's story, figure caption, tables and claims at quick seed 0) has no
    LaTeX left in its text, and no story writes a formula in Unicode where it could typeset it."""
    from impediments import experiments
    from impediments.experiments.figures import story_of, takes_band

    outcomes = []
    for name in experiments.names():
        module, result = quick_run(name, 0)
        tables = module.tables(result) if hasattr(module, "tables") else []
        outcomes.append(Outcome(name=name, description=experiments.description(name), section=module.SECTION,
                                seeds=[0], configs={}, result={}, claims=over_seeds({0: module.claims(result)}),
                                tables=tables, png=b"", elapsed_s=0.0, cached=False, story=story_of(module),
                                band=takes_band(module)))
        story = visible_text(to_html(story_of(module)))
        assert not UNICODE_FORMULA.findall(story), (name, UNICODE_FORMULA.findall(story))
    html = render_notebook(outcomes, quick=True, seeds=[0])
    assert not raw_tex(html), raw_tex(html)[:5]
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    drawn = {o.name for o in outcomes if 'class="math' in to_html(o.story)}
    assert {"zigzag", "depth_distributions", "glorot_he", "residual_limits", "bn_dropout", "l2_with_bn",
            "bn_gradient_scale", "autoencoder_pca"} <= drawn, sorted(drawn)


SHOTS = ("glorot_he", "linear_depth", "bn_gradient_scale")   # a paper's figure, two new module points


def test_three_sections_render_offline_in_a_browser_and_are_the_docs_screenshots(quick_run):
    """Three sections of the lab notebook (quick seeds 0-2, figures of the mean with their band) in Debian's
    chromium with every request refused: each section's figure and every typeset formula load (an SVG that did
    not decode has naturalWidth 0). The screenshots are the ones docs/reproduce.md shows."""
    import shutil
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    from impediments import experiments
    from impediments.experiments import runner
    from impediments.experiments.aggregate import band, mean_result
    from impediments.experiments.figures import story_of, takes_band

    seeds = (0, 1, 2)
    outcomes = []
    for name in SHOTS:
        module = experiments.get(name)
        results = [quick_run(name, s)[1] for s in seeds]
        mean = mean_result(results)
        outcomes.append(Outcome(name=name, description=experiments.description(name), section=module.SECTION,
                                seeds=list(seeds), configs={}, result={},
                                claims=over_seeds({s: module.claims(r) for s, r in zip(seeds, results)}),
                                tables=module.tables(mean) if hasattr(module, "tables") else [],
                                png=runner.draw(module, mean, band(results)), elapsed_s=0.0, cached=True,
                                story=story_of(module), band=takes_band(module)))
    html = render_notebook(outcomes, quick=True, seeds=seeds)
    executable = shutil.which("chromium")
    assert executable, "the rendering test needs Debian's chromium: `make test` installs it (never `playwright install`)"
    shots = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.route("**/*", lambda route: route.abort())          # offline: nothing is fetched
        page.set_content(html)
        for name in SHOTS:
            top = page.eval_on_selector(f"h3#{name}", "h => h.getBoundingClientRect().top + window.scrollY")
            nxt = page.evaluate(f"""() => {{ const h = [...document.querySelectorAll('h2, h3')];
                const i = h.findIndex(e => e.id === '{name}');
                return i + 1 < h.length ? h[i + 1].getBoundingClientRect().top + window.scrollY
                                        : document.body.scrollHeight; }}""")
            images = page.evaluate(f"""() => {{ const out = []; let e = document.getElementById('{name}');
                for (e = e.nextElementSibling; e && !['H2', 'H3'].includes(e.tagName); e = e.nextElementSibling)
                    [e, ...e.querySelectorAll('img')].filter(i => i.tagName === 'IMG')
                        .forEach(i => out.push([i.className, i.naturalWidth]));
                return out; }}""")
            kinds = {k for k, _ in images}
            assert "figure" in kinds and {"math", "math-block"} & kinds, (name, images)
            assert all(w > 0 for _, w in images), (name, images)
            page.screenshot(path=str(shots / f"notebook-{name}.png"), full_page=True,
                            clip={"x": 0, "y": top - 8, "width": 1200, "height": min(nxt - top, 2600)})
        browser.close()
