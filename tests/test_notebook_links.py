"""Each section of the lab notebook links to its Jupyter notebook and its playground setup (issue 27 item 3):
the links come from the playground (layer 7) through the CLI, so the renderer imports nothing above it."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from impediments import experiments
from impediments.cli import main
from impediments.experiments.runner import Outcome
from impediments.playground.config import from_fragment
from impediments.playground.links import experiment_config, experiment_links
from impediments.report.notebook import render_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_experiment_links_to_the_notebook_that_opens_it_and_to_its_playground_setup():
    for name in experiments.names():
        (label, href), (_, url) = experiment_links(name)
        notebook = Path(urlsplit(href).path)
        assert notebook.parent == NOTEBOOKS and f'experiment_url("{name}")' in notebook.read_text()
        assert label.endswith(f"notebooks/{notebook.name}")
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("127.0.0.1", 8765)          # impediments playground's default
        assert from_fragment(parts.fragment) == experiment_config(name)    # the very setup, parsed back
    assert experiment_links("no_such_experiment") == []


def test_the_rendered_section_carries_its_links_and_none_without_them():
    toy = Outcome(name="dead_bias", description="dead units", section="Part 1", seeds=[0], configs={}, result={},
                  claims=[], tables=[], png=None, elapsed_s=1.0, cached=False, band=False)
    html = render_notebook([toy], quick=True, seeds=[0], links=experiment_links)
    assert "Try it:" in html and "03_bad_choices.py" in html and "http://127.0.0.1:8765/#" in html
    assert "Try it:" not in render_notebook([toy], quick=True, seeds=[0])


def test_reproduce_from_the_cli_writes_the_links(tmp_path):
    assert main(["reproduce", "activations", "--quick", "--seeds", "0", "--jobs", "1", "--out", str(tmp_path)]) in (0, 1)
    html = (tmp_path / "notebook.html").read_text()
    assert "01_activations.py" in html and "http://127.0.0.1:8765/#" in html
