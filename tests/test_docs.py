"""The documentation builds with ``mkdocs build --strict`` (a broken link, anchor, reference or page left out of
the navigation fails), offline, and its generated pages say what the code says (issue 28 item 4)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from impediments.doctor.codes import CODES
from impediments.doctor.thresholds import Thresholds

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return out, log


def test_the_site_builds_strict_without_a_warning(site):
    out, log = site
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.M), log[-4000:]
    assert (out / "index.html").is_file() and (out / "api" / "index.html").is_file()


def test_every_page_is_in_the_navigation():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages and all(re.search(rf":\s*{re.escape(p)}\s*$", config, re.M) for p in pages), pages


def test_the_codes_page_is_generated_from_the_catalogue_and_the_thresholds(site):
    page = (site[0] / "codes" / "index.html").read_text(encoding="utf-8")
    missing = [c for c in CODES if f'id="{c}"' not in page]
    assert missing == [], missing
    assert all(t["name"] in page for t in Thresholds().describe())
    assert "AUTOTRAINER" in page                                  # a reference, from codes.py, rendered


def test_the_api_reference_comes_from_the_docstrings(site):
    page = (site[0] / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("watch", "Monitor", "diagnose", "checkup", "FixReport", "plot_activations"):
        assert f"impediments" in page and name in page, name
    assert "Draw" in page                                          # plot_activations' docstring


def test_the_site_loads_nothing_from_the_network(site):
    for page in site[0].rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        external = re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](https?://[^"']+)""", text)
        assert external == [], (page, external)


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    for needed in ("imp.watch(", "mon.report()", "impediments doctor", "imp.checkup(", "impediments fix",
                   "make demo", "imp.plot_activations(np.arange(-5, 5, 0.1))", "notebooks/"):
        assert needed in readme, needed
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and [link for link in links if not (ROOT / link).exists()] == []
