"""The experiment runner: seeds, cache, resume, atomic outputs, notebook, claims.json, CLI exit codes."""
from __future__ import annotations

import json
import os
import sys
import time
import types
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest

from impediments import experiments
from impediments.cli import main
from impediments.experiments import runner
from impediments.experiments.framework import Claim, Table, claim, from_jsonable, to_jsonable
from impediments.experiments.verdict import over_seeds

CALLS = {"n": 0}


def _fake_module(name: str, *, passes: bool = True, section: str = "Fake section") -> types.ModuleType:
    mod = types.ModuleType(f"impediments_test_fake.{name}")
    mod.__doc__ = (f"Fake experiment {name}.\n\nA story paragraph for {name} with :func:`x.y`, ``code``, "
                   "**bold** and :math:`\\sigma^2`.\n\n- first item\n- second item")

    @dataclass(frozen=True)
    class Config:
        seed: int = 0
        n: int = 5

        @classmethod
        def quick(cls, seed=0):
            return cls(seed=seed, n=5)

        @classmethod
        def full(cls, seed=0):
            return cls(seed=seed, n=50)

    @dataclass
    class Result:
        values: np.ndarray
        total: float

    def run(config):
        CALLS["n"] += 1
        v = np.random.default_rng(config.seed).normal(size=config.n)
        return Result(values=v, total=float(v.sum()))

    def plot(result):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot(np.asarray(result.values))
        return fig, ax

    def claims(result):
        total = float(np.sum(result.values))
        shift = 0.0 if passes else 1.0  # a failing claim: the recorded total is off by 1 at every seed
        return [claim("the values sum to their total", "test",
                      {"total": result.total + shift, "sum_of_values": total},
                      "abs(total - sum_of_values) <= 1e-9", labels={"total": "recorded total"})]

    def tables(result):
        return [Table("values", ["i", "v"], [[i, float(v)] for i, v in enumerate(result.values)])]

    mod.SECTION, mod.np = section, np  # np: the namespace Result's annotations resolve in
    mod.Config, mod.Result, mod.run, mod.plot, mod.claims, mod.tables = Config, Result, run, plot, claims, tables
    Result.__module__ = mod.__name__
    return mod


@pytest.fixture
def fake(monkeypatch):
    mods = {"fake_a": _fake_module("fake_a"), "fake_b": _fake_module("fake_b", section="Other section")}
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(experiments, "REGISTRY", {n: m.__name__ for n, m in mods.items()})
    CALLS["n"] = 0
    return mods


def _run(tmp_path, names=("fake_a", "fake_b"), **kw):
    kw.setdefault("seeds", [0, 1, 2])
    return runner.reproduce(list(names), quick=True, out=tmp_path, stream=open(os.devnull, "w"), **kw)


def test_writes_all_outputs_and_claims_json(fake, tmp_path):
    assert _run(tmp_path) is True
    for name in fake:
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["name"] == name and record["verdict"] == "holds" and record["seeds"] == [0, 1, 2]
        assert record["configs"] == {str(s): {"seed": s, "n": 5} for s in (0, 1, 2)}
        # the figure's result is the mean over seeds, field by field
        runs = [np.random.default_rng(s).normal(size=5) for s in (0, 1, 2)]
        np.testing.assert_allclose(record["mean_result"]["values"], np.mean(runs, axis=0))
    summary = json.loads((tmp_path / "claims.json").read_text())
    assert summary["schema"] == "impediments.claims" and summary["version"] == 2
    assert summary["passed"] is True and summary["quick"] is True and summary["seeds"] == [0, 1, 2]
    assert summary["counts"] == {"holds": 2, "inconclusive": 0, "fails": 0}
    assert list(summary["experiments"]) == ["fake_a", "fake_b"]
    c = summary["experiments"]["fake_a"]["claims"][0]
    assert c["verdict"] == "holds" and c["seeds"] == [0, 1, 2] and len(c["measured"]["total"]) == 3
    assert c["condition"] == "abs(total - sum_of_values) <= 1e-9"
    (q,) = c["quantities"]
    assert q["quantity"] == "1e-09 - abs(total - sum_of_values)" and q["side"] == ">= 0" and len(q["values"]) == 3
    assert q["low"] <= q["mean"] <= q["high"] and q["confidence"] == 0.95
    assert not list(tmp_path.glob("*.tmp")) and not list((tmp_path / ".cache").glob("*.tmp"))


def test_failed_claim_returns_false_and_cli_exit_1(fake, tmp_path, monkeypatch, capsys):
    bad = _fake_module("fake_bad", passes=False)
    monkeypatch.setitem(sys.modules, bad.__name__, bad)
    monkeypatch.setitem(experiments.REGISTRY, "fake_bad", bad.__name__)
    assert _run(tmp_path, names=["fake_bad"]) is False
    summary = json.loads((tmp_path / "claims.json").read_text())
    assert summary["passed"] is False and summary["counts"]["fails"] == 1
    assert main(["reproduce", "fake_bad", "--quick", "--out", str(tmp_path / "cli"), "--jobs", "1"]) == 1
    assert main(["reproduce", "fake_a", "--quick", "--out", str(tmp_path / "cli"), "--jobs", "1"]) == 0


def test_inconclusive_claim_does_not_fail_the_run(fake, tmp_path, monkeypatch):
    def claims(result):  # the sign of the second value: positive at some seeds, negative at others
        return [claim("the second value is positive", "test", {"second": float(result.values[1])}, "second > 0",
                      inconclusive_reason="a coin flip")]

    monkeypatch.setattr(fake["fake_a"], "claims", claims)
    assert _run(tmp_path, names=["fake_a"], seeds=[0, 1, 2, 3]) is True
    (c,) = json.loads((tmp_path / "claims.json").read_text())["experiments"]["fake_a"]["claims"]
    firsts = [np.random.default_rng(s).normal(size=5)[1] for s in range(4)]
    assert min(firsts) < 0 < max(firsts), "the fixture needs seeds on both sides"
    assert c["verdict"] == "inconclusive" and c["inconclusive_reason"] == "a coin flip"
    assert "a coin flip" in (tmp_path / "notebook.html").read_text()


def test_crashing_experiment_is_reported_and_others_still_run(fake, tmp_path, monkeypatch):
    def boom(config):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(fake["fake_a"], "run", boom)
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:
        ok = runner.reproduce(["fake_a", "fake_b"], quick=True, out=tmp_path / "out", seeds=[0, 1, 2], stream=stream)
    assert ok is False
    assert "broken on purpose" in log.read_text() and "Traceback" in log.read_text()
    summary = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert summary["experiments"]["fake_a"]["verdict"] == "fails"
    assert "broken on purpose" in summary["experiments"]["fake_a"]["claims"][0]["text"]
    assert summary["experiments"]["fake_b"]["verdict"] == "holds"
    assert not list((tmp_path / "out" / ".cache").glob("fake_a-*")), "a crash is never cached"
    assert "broken on purpose" in (tmp_path / "out" / "notebook.html").read_text()
    assert json.loads((tmp_path / "out" / "fake_a.json").read_text())["verdict"] == "fails"
    assert not (tmp_path / "out" / "fake_a.png").exists()


def test_each_seed_is_cached_separately_and_a_repeated_run_is_instant(fake, tmp_path):
    _run(tmp_path)
    assert CALLS["n"] == 6
    start = time.perf_counter()
    _run(tmp_path)
    assert CALLS["n"] == 6, "a repeated run must not rerun experiments"
    assert time.perf_counter() - start < 1.0
    _run(tmp_path, seeds=[0, 1, 2, 3, 4])  # adding seeds reuses the earlier ones
    assert CALLS["n"] == 10
    assert len(list((tmp_path / ".cache").glob("fake_a-*.json"))) == 5


def test_interrupted_run_resumes(fake, tmp_path, monkeypatch):
    real = fake["fake_b"].run

    def boom(config):
        if config.seed == 1:
            raise KeyboardInterrupt
        return real(config)

    monkeypatch.setattr(fake["fake_b"], "run", boom)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    assert CALLS["n"] == 4 and not (tmp_path / "notebook.html").exists()  # fake_a 0-2, fake_b 0
    monkeypatch.setattr(fake["fake_b"], "run", real)
    assert _run(tmp_path) is True
    assert CALLS["n"] == 6, "only the unfinished (experiment, seed) pairs rerun"


def test_corrupt_cache_entry_warns_and_reruns(fake, tmp_path):
    _run(tmp_path, names=["fake_a"], seeds=[0])
    (entry,) = (tmp_path / ".cache").glob("fake_a-*[0-9a-f].json")
    entry.write_text("{not json")
    with pytest.warns(runner.CacheWarning, match="corrupt"):
        assert _run(tmp_path, names=["fake_a"], seeds=[0]) is True
    assert CALLS["n"] == 2
    json.loads(entry.read_text())  # rewritten, valid again


def test_unwritable_output_folder_is_a_clear_error(fake, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(runner.OutputFolderError, match="cannot write to output folder"):
        _run(blocker / "out")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(runner.OutputFolderError, match=str(ro)):
                _run(ro)
        finally:
            ro.chmod(0o700)


@pytest.mark.parametrize("text, seeds", [("0-9", list(range(10))), ("3,4,7", [3, 4, 7]), ("0-2,7", [0, 1, 2, 7]),
                                         ("5", [5])])
def test_parse_seeds(text, seeds):
    assert runner.parse_seeds(text, quick=True) == seeds


def test_default_seeds_per_mode():
    assert runner.parse_seeds(None, quick=True, start=10) == list(range(10, 10 + runner.QUICK_SEEDS))
    assert runner.parse_seeds(None, quick=False) == list(range(runner.FULL_SEEDS))
    assert runner.QUICK_SEEDS >= 3 and runner.FULL_SEEDS >= 8


@pytest.mark.parametrize("argv, bad", [(["--seed", "-1"], "-1"), (["--seeds", "-1"], "-1"), (["--seeds", "3-1"], "3-1"),
                                       (["--seeds", "a"], "'a'"), (["--jobs", "0"], "0")])
def test_bad_seeds_and_jobs_are_one_line_usage_errors(fake, tmp_path, capsys, argv, bad):
    assert main(["reproduce", "fake_a", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad in err and "Traceback" not in err
    assert CALLS["n"] == 0


def test_worker_processes_give_the_same_verdicts(tmp_path):
    """Two spawned workers (real experiments: workers import the registry afresh) match one process."""
    one = runner.reproduce(["activations"], quick=True, out=tmp_path / "one", seeds=[0, 1], jobs=1,
                           stream=open(os.devnull, "w"))
    two = runner.reproduce(["activations"], quick=True, out=tmp_path / "two", seeds=[0, 1], jobs=2,
                           stream=open(os.devnull, "w"))
    assert one is two is True
    a, b = (json.loads((tmp_path / d / "claims.json").read_text()) for d in ("one", "two"))
    assert a["experiments"] == b["experiments"]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.refs.append((tag, key, value))


def test_notebook_is_self_contained_readable_and_in_story_order(fake, tmp_path):
    _run(tmp_path)
    text = (tmp_path / "notebook.html").read_text()
    parser = _Links()
    parser.feed(text)
    assert parser.refs, "the notebook embeds figures"
    for tag, key, value in parser.refs:
        assert value.startswith(("data:", "#")), f"external reference {tag} {key}={value[:60]}"
    assert "script" not in parser.tags and "link" not in parser.tags
    assert sum(v.startswith("data:image/png;base64,") for _, _, v in parser.refs) == 2
    assert text.index('id="fake_a"') < text.index('id="fake_b"')
    assert "Fake section" in text and "Other section" in text and "A story paragraph for fake_a" in text
    assert "2 of 2 claims hold" in text and "recorded total" in text  # the human label, not the name
    # markup rendered: math as an offline SVG, roles and code as code, bold as bold, bullets as a list
    for raw in (":math:", ":func:", "``", "**", "- first item"):
        assert raw not in text, raw
    assert "data:image/svg+xml;base64," in text and "<code>x.y</code>" in text and "<b>bold</b>" in text
    assert "<li>first item</li>" in text
    # the margins are exact (the same at every seed): shown once as exact, with no strip plot or interval
    assert "exact: the same at every one of the" in text and text.count("<svg") == 0


def test_unknown_names(fake, tmp_path, capsys):
    with pytest.raises(ValueError, match="valid: fake_a, fake_b"):
        _run(tmp_path, names=["nope"])
    assert main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    assert "fake_a" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fake_a"):
        experiments.get("nope")


def test_registry_is_story_ordered_part1_first():
    names = experiments.names()
    assert names == list(dict.fromkeys(names))
    for name in names:
        mod = experiments.get(name)
        assert mod.SECTION and experiments.description(name) == mod.__doc__.strip().splitlines()[0].replace("``", "")
        assert not hasattr(mod, "NAME") and not hasattr(mod, "DESCRIPTION"), "derived, not written twice"
        assert all(hasattr(mod, a) for a in ("Config", "Result", "run", "plot", "claims"))
        assert "matplotlib" not in (mod.__dict__.keys())
    from impediments.experiments import part1

    assert names[: len(part1.EXPERIMENTS)] == [p.rsplit(".", 1)[-1] for p in part1.EXPERIMENTS]


def test_jsonable_roundtrip():
    @dataclass
    class R:
        a: np.ndarray
        b: list
        c: float

    r = R(a=np.array([[1.0, np.nan], [np.inf, -2.0]]), b=[1, {"x": np.float32(0.5)}], c=float("-inf"))
    data = json.loads(json.dumps(to_jsonable(r), allow_nan=False))
    back = from_jsonable(R, data)
    np.testing.assert_array_equal(back.a, r.a)
    assert back.b == [1, {"x": 0.5}] and back.c == float("-inf")
    with pytest.raises(TypeError, match="cannot convert"):
        to_jsonable(object())
    c = Claim("t", "s", {"x": np.float64(1.5), "ok": np.bool_(True)}, "x > 1")
    assert c.passed is True and Claim.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_cli_list_and_real_quick_reproduce(tmp_path, capsys):
    from impediments.experiments import part1

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for path in part1.EXPERIMENTS:
        name = path.rsplit(".", 1)[-1]
        assert name in listed and experiments.description(name) in listed
    out = tmp_path / "real"
    assert main(["reproduce", "activations", "--quick", "--out", str(out), "--seed", "1", "--jobs", "1"]) == 0
    record = json.loads((out / "activations.json").read_text())
    assert record["seeds"] == list(range(1, 1 + runner.QUICK_SEEDS)) and record["verdict"] == "holds"
    assert (out / "activations.png").read_bytes().startswith(b"\x89PNG")
    claims = json.loads((out / "claims.json").read_text())
    assert list(claims["experiments"]) == ["activations"] and claims["passed"] is True


def test_library_code_changes_invalidate_the_cache_and_presentation_code_does_not(tmp_path, monkeypatch):
    """The key covers the library experiments run on (a copy of the package, edited file by file)."""
    import shutil
    from pathlib import Path

    import impediments
    from impediments.experiments import cache

    pkg = tmp_path / "impediments"
    shutil.copytree(Path(impediments.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__", "static"))
    monkeypatch.setattr(cache, "PACKAGE_ROOT", pkg)

    def key():
        cache.library_source_hash.cache_clear()
        return cache.library_source_hash()

    first = key()
    with open(pkg / "plots" / "style.py", "a") as f:                  # a figure's look: same numbers
        f.write("\n# restyled\n")
    assert key() == first
    with open(pkg / "models" / "mlp.py", "a") as f:                   # the models experiments train
        f.write("\n# changed\n")
    assert key() != first
    cache.library_source_hash.cache_clear()
