"""benchmarks/gpu.py (issue 26, item 5) on the CPU: its usage errors, the no-CUDA line, and the parts that run
without a GPU (the interleaved overhead rows, the table), with ``torch.cuda.is_available`` forced False so that
a GPU machine checks the same path."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def gpu():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("gpu_script", BENCHMARKS / "gpu.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_without_cuda_it_says_so_in_one_line_and_exits_2(gpu, no_cuda, capsys, tmp_path):
    out = tmp_path / "gpu.md"
    assert gpu.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA device" in err[0] and "--allow-cpu" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("argv, named", [
    (["--repeats", "0"], ["--repeats", "0"]),
    (["--only", "overhead,bogus"], ["'bogus'", "overhead, sync, fsdp1, captured"]),
    (["--steps", "three"], ["--steps", "'three'"]),
    (["--no-such-flag"], ["--no-such-flag"]),
])
def test_a_bad_argument_is_one_line_naming_it_and_exit_2(gpu, capsys, argv, named):
    assert gpu.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(n in err[0] for n in named), err


def test_sections_parse(gpu):
    assert gpu.parse_args([]).sections == list(gpu.SECTIONS)
    assert gpu.parse_args(["--only", "sync, fsdp1"]).sections == ["sync", "fsdp1"]


def test_on_the_cpu_it_runs_what_it_can_and_lists_the_rest(gpu, no_cuda, tmp_path, capsys):
    out = tmp_path / "gpu.md"
    assert gpu.main(["--allow-cpu", "--no-llm", "--repeats", "1", "--steps", "1", "--sync-steps", "1",
                     "--out", str(out)]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    assert "not a measurement" in text.splitlines()[0]
    rows = [ln.split("|")[1:-1] for ln in text.splitlines() if ln.startswith("| (")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        (loop, c) for loop in ("(a) MLP", "(b) CNN", "(c) transformer") for c in gpu.CONFIGS]
    assert all(len(r) == 8 for r in rows)
    for r in rows:                        # plain against itself is 1 exactly; the watched ones made a report
        assert (float(r[3]) == 1.0) == (r[1].strip() == "plain")
        assert (r[5].strip() == "") == (r[1].strip() == "plain")
    checks = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| (")][2:]
    assert len(checks) == 2 * 3 + 1 + 2 and all(ln.endswith(f"| {gpu.NEEDS_CUDA} |") for ln in checks), checks


def test_relative_difference(gpu):
    assert gpu.rel(1.0, 1.0) == 0.0 and gpu.rel(float("nan"), float("nan")) == 0.0
    assert gpu.rel(1.1, 1.0) == pytest.approx(0.1) and gpu.rel(float("nan"), 1.0) == float("inf")


def test_the_cpu_run_leaves_torch_as_it_found_it(gpu, no_cuda, tmp_path):
    """The overhead rows hold several monitors entered at once; they exit last-in first-out, so every function
    a monitor wraps (clipping, the loader) is torch's own again afterwards (a first-in first-out exit left a
    monitor's clip wrapper installed, and a later test on the meta device added into its CPU accumulators)."""
    import torch.utils.data

    before = (torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_,
              torch.utils.data.DataLoader.__iter__)
    assert gpu.main(["--allow-cpu", "--no-llm", "--repeats", "1", "--steps", "1", "--sync-steps", "1",
                     "--out", str(tmp_path / "gpu.md")]) == 0
    assert (torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_,
            torch.utils.data.DataLoader.__iter__) == before
