"""`pip install .` into an environment that already has a torch in the declared range keeps that torch."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

import torch

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, deps)}


def test_dependencies_are_ranges_and_accept_other_torch_builds():
    reqs = requirements()
    assert all(not any(s.operator in ("==", "===") for s in r.specifier) for r in reqs.values())
    torch_range = reqs["torch"].specifier
    for v in ("2.1.0", "2.4.1+cu121", "2.6.0+rocm6.1", "2.13.0+cpu", torch.__version__):
        assert torch_range.contains(Version(v), prereleases=True), v
    assert not torch_range.contains(Version("2.0.1"))      # no always_call / post-accumulate-grad hooks


def test_pip_install_dot_keeps_the_installed_torch(tmp_path):
    """Real pip, real resolver, this environment's torch: nothing but impediments would be installed."""
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
                           "--quiet", "--report", str(report), str(ROOT)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert names == ["impediments"], names
