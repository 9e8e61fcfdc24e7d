"""The module as Jupyter notebooks: every notebook in notebooks/ runs top to bottom, headless, on an ipykernel.

The notebooks are jupytext percent scripts (``# %%`` cells), converted here with jupytext and executed with
nbclient; any cell that raises fails the test, and each claim cell asserts that its claims hold. The
notebook extra (``pip install 'impediments[notebook]'``) provides jupytext, nbclient, ipykernel and nbformat;
``make test`` installs it.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

from impediments import experiments
from impediments.playground import experiment_config, from_fragment

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SHOTS = ROOT / "docs" / "screenshots"
GET = re.compile(r'experiments\.get\("(\w+)"\)')


def _code(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _experiments_of(notebook) -> list[str]:
    return [name for source in _code(notebook) for name in GET.findall(source)]


def test_the_notebooks_cover_every_experiment_once_in_the_module_order():
    assert len(NOTEBOOKS) >= 9, NOTEBOOKS
    used = [name for path in NOTEBOOKS for name in _experiments_of(jupytext.read(path))]
    assert sorted(used) == sorted(experiments.names()), "each registered experiment in exactly one notebook"
    position = {name: i for i, name in enumerate(experiments.names())}
    by_notebook = [[position[n] for n in _experiments_of(jupytext.read(p))] for p in NOTEBOOKS]
    firsts = [min(p) for p in by_notebook]
    assert firsts == sorted(firsts), "the notebooks follow the module's story order"


def test_the_first_notebook_opens_with_the_modules_first_cell():
    first = _code(jupytext.read(NOTEBOOKS[0]))[0]
    calls = [ast.unparse(node) for node in ast.walk(ast.parse(first)) if isinstance(node, ast.Call)]
    assert "imp.plot_activations(np.arange(-5, 5, 0.1))" in calls, calls


def _run(path: Path, folder: Path):
    """Execute one notebook in a fresh kernel; returns (notebook with outputs, seconds) or the exception."""
    notebook = jupytext.read(path)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(folder)}})
    # MPLBACKEND=agg (set by the Makefile) would keep the kernel from drawing inline figures
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    start = time.perf_counter()
    try:
        client.execute(env={**env, "OMP_NUM_THREADS": "1"})
    except Exception as exc:  # reported by that notebook's test, after the others ran
        return exc
    return notebook, time.perf_counter() - start


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook executed, two kernels at a time (the machine's cores), each in its own folder."""
    folder = tmp_path_factory.mktemp("notebooks")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(NOTEBOOKS, pool.map(lambda p: _run(p, folder), NOTEBOOKS)))
    print(f"{len(NOTEBOOKS)} notebooks in {time.perf_counter() - start:.0f} s (2 at a time)")
    return runs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_and_draws_its_figures(path, executed):
    if isinstance(executed[path], Exception):
        raise executed[path]
    notebook, seconds = executed[path]
    names = _experiments_of(notebook)
    assert names, f"{path.name} runs no experiment"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "every code cell ran"
    figures = [cell for cell in code if any("image/png" in out.get("data", {}) for out in cell.outputs)]
    experiment_cells = [cell for cell in code if GET.search(cell.source)]
    assert all(cell in figures for cell in experiment_cells), "each experiment cell draws its figure"
    assert len(figures) >= len(names)
    checks = [cell for cell in code if "assert all(c.passed for c in claims)" in cell.source]
    assert len(checks) == len(names), "one claim cell per experiment"
    for cell in checks:                                    # the claims were printed, and every one holds
        text = "".join(out.get("text", "") for out in cell.outputs)
        assert text.count("holds: ") >= 1 and "FAILS: " not in text, text
    links = ["".join(out["text"] for out in cell.outputs if out.get("name") == "stdout").strip()
             for cell in code if "experiment_url(" in cell.source]
    assert len(links) == len(names), links
    for name, link in zip(names, links):                    # the pointer opens that experiment's preset
        assert from_fragment(link.split("#", 1)[1]) == experiment_config(name), (name, link)
    print(f"{path.name}: {seconds:.1f} s, {len(names)} experiment(s), {len(figures)} figure(s)")


def test_a_rendered_notebook_shows_its_figures_and_checked_claims(executed, quick_run):
    """Notebook 1 rendered to static HTML (nbconvert's JupyterLab template) in Debian's chromium, offline:
    its three figures load and its claims read "holds". The screenshot is the one the docs show."""
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    if isinstance(executed[NOTEBOOKS[0]], Exception):
        raise executed[NOTEBOOKS[0]]
    html, _ = HTMLExporter(template_name="lab", mathjax_url="").from_notebook_node(executed[NOTEBOOKS[0]][0])
    executable = shutil.which("chromium")
    assert executable, "the rendering test needs Debian's chromium: `make test` installs it (never `playwright install`)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.route("**/*", lambda route: route.abort())          # offline: nothing is fetched
        page.set_content(html)
        widths = page.eval_on_selector_all("img:not(.math)", "images => images.map(i => i.naturalWidth)")
        formulas = page.eval_on_selector_all("img.math", "images => images.map(i => i.naturalWidth)")
        text = page.inner_text("body")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "notebook-activations.png"), full_page=True)
        browser.close()
    assert len(widths) == 3 and min(widths) > 300, widths      # plot_activations' and the two experiments' figures
    assert formulas and min(formulas) > 0 and ":math:" not in text   # the claims' formulas typeset, none as source
    assert "imp.plot_activations(np.arange(-5, 5, 0.1))" in text
    claimed = sum(len(module.claims(result)) for module, result in
                  (quick_run(name, 0) for name in ("activations", "linear_depth")))
    assert text.count("holds: ") == claimed
    assert "FAILS: " not in text
