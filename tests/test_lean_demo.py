"""`make demo` installs only the core dependencies: the demo's commands must run with every extra missing.

A subprocess sees this venv's packages without the optional ones (Lightning, transformers, Keras,
Playwright, TensorBoard, the notebook and test tools), without torch's networkx and without the C++
unit-test executables of the torch wheel (torch/test, torch/bin's tests, protoc), as in a venv made by
``make demo``, and runs ``impediments list`` and a quick ``impediments reproduce`` (two cheap experiments,
one seed, which still exercise the runner, the cache, the figures, the claims, the lab notebook and a torch
optimizer, which imports torch._dynamo and sympy).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("lightning", "pytorch_lightning", "lightning_fabric", "lightning_utilities", "torchmetrics", "transformers",
          "accelerate", "keras", "playwright", "tensorboard", "jupytext", "nbclient", "nbconvert", "ipykernel",
          "hypothesis", "pytest", "_pytest", "networkx")
#: what ``make demo`` removes from the torch wheel (the Makefile's rm line): PyTorch's own C++ test executables
TORCH_PRUNED = ("test", "bin/test_*", "bin/*Test", "bin/protoc*")
REPORT = ("from impediments.cli import main; import sys; code = main(sys.argv[1:]); "
          f"print('extras imported:', sorted({{m.split('.')[0] for m in sys.modules}} & set({EXTRAS!r}))); "
          "sys.exit(code)")


@pytest.fixture(scope="module")
def lean_site(tmp_path_factory) -> Path:
    """A site-packages of links to this venv's packages without the extras' (as ``make demo`` leaves it)."""
    site = Path(sysconfig.get_paths()["purelib"])
    lean = tmp_path_factory.mktemp("lean-site")
    for entry in site.iterdir():
        top = re.split(r"[-.]", entry.name, maxsplit=1)[0].lower()
        if top in EXTRAS or entry.suffix == ".pth" or entry.name.startswith("__editable__") or top == "torch":
            continue
        (lean / entry.name).symlink_to(entry)
    torch_dir, pruned = site / "torch", set()
    for pattern in TORCH_PRUNED:     # gone already in a venv made by `make`; hidden here in one made otherwise
        pruned |= set(torch_dir.glob(pattern))
    for entry in (torch_dir, *torch_dir.iterdir(), *(torch_dir / "bin").iterdir()):
        target = lean / "torch" / entry.relative_to(torch_dir)
        if entry == torch_dir or entry.name == "bin":
            target.mkdir(exist_ok=True)
        elif entry not in pruned:
            target.symlink_to(entry)
    for dist in site.glob("torch-*"):
        (lean / dist.name).symlink_to(dist)
    assert not any((lean / name).exists() for name in EXTRAS) and (lean / "torch" / "__init__.py").exists()
    assert not any(any((lean / "torch").glob(pattern)) for pattern in TORCH_PRUNED)
    assert (lean / "torch" / "bin").is_dir() and (lean / "torch" / "lib").exists()
    return lean


def _demo_command(lean_site: Path, *args: str) -> subprocess.CompletedProcess:
    # -S: no site-packages and no .pth files; only the lean links and the project's source are importable
    return subprocess.run([sys.executable, "-S", "-c", REPORT, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'src'}:{lean_site}",
                                            "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1", "HOME": str(lean_site)})


def test_the_demo_runs_with_every_extra_missing(lean_site, tmp_path):
    hidden = subprocess.run([sys.executable, "-S", "-c", "import tensorboard"], capture_output=True,
                            env={"PYTHONPATH": f"{ROOT / 'src'}:{lean_site}"})
    assert hidden.returncode == 1 and b"No module named 'tensorboard'" in hidden.stderr   # the extras are gone
    listed = _demo_command(lean_site, "list")
    assert listed.returncode == 0, listed.stderr
    assert "extras imported: []" in listed.stdout and "zigzag" in listed.stdout
    ran = _demo_command(lean_site, "reproduce", "activations", "zero_init", "--quick", "--seeds", "0", "--jobs", "1",
                        "--out", str(tmp_path / "out"))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "extras imported: []" in ran.stdout
    assert (tmp_path / "out" / "notebook.html").stat().st_size > 10_000
    assert {p.name for p in (tmp_path / "out").glob("*.png")} == {"activations.png", "zero_init.png"}


def test_make_demo_installs_the_core_only_and_make_test_the_extras_it_tests():
    makefile = (ROOT / "Makefile").read_text()
    demo_install = re.search(r"^\$\(STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert re.search(r"pip install .*--no-deps -e \.$", demo_install, re.M), demo_install   # no extras for the demo
    assert re.search(r"pip install .*--no-deps torch==", demo_install), demo_install
    runtime = re.search(r"^TORCH_RUNTIME := (.*)$", makefile, re.M).group(1).split()
    assert "sympy" in runtime and "networkx" not in runtime
    removed = re.search(r"^\trm -rf (.*)$", demo_install, re.M).group(1).split()
    assert [r.removeprefix("$(TORCH_DIR)/") for r in removed] == list(TORCH_PRUNED)
    assert re.search(r"^demo: \$\(STAMP\)$", makefile, re.M)
    tested = re.search(r"^TESTED_EXTRAS := (.*)$", makefile, re.M).group(1).split(",")
    assert re.search(r"^test: \$\(TEST_STAMP\)", makefile, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    offered = re.findall(r"^(\w+) = \[", pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0], re.M)
    # the extras the suite imports (test_integrations_*, test_monitor_tensorboard, test_notebooks, the browser)
    assert {"test", "notebook", "tensorboard", "lightning", "transformers", "keras"} <= set(tested) <= set(offered)
