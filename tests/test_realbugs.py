"""The real-bug corpus (benchmarks/realbugs/, issue 24): every entry imports, its META is complete and
consistent with the doctor's catalogue, its programs build and compute a finite loss, the held-out and
dropped lists match their folders, and three entries pass the reproduction gate at two seeds.

The doctor is never run here: the held-out part must stay unseen, and the full score is
``benchmarks/realbugs.py``'s job."""
from __future__ import annotations

import importlib.util
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch

# the entries import ``realbugs._common``: the package lives in benchmarks/, which must be on sys.path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import realbugs  # noqa: E402
from impediments.doctor import CODES  # noqa: E402
from realbugs._common import GATES, LABELS, META_FIELDS, Program, batches, evaluate, gate, train  # noqa: E402

CORPUS = Path(realbugs.__file__).resolve().parent
ALL = realbugs.entry_names() + realbugs.entry_names(held_out=True)
#: the second held-out part (HELDOUT2.md): checked for well-formed META and a finite first loss, never diagnosed
HELDOUT2 = realbugs.entry_names(part="heldout2")
DROPPED = ["dropped." + n for n in realbugs.entry_names(folder="dropped")]


def test_the_corpus_is_as_large_as_issue_24_asks():
    assert len(ALL) >= 40
    assert len(realbugs.entry_names(held_out=True)) >= round(0.2 * len(ALL))


@pytest.mark.parametrize("name", ALL + HELDOUT2 + DROPPED)
def test_meta_is_complete_and_names_real_codes(name):
    meta = realbugs.load(name).META
    assert set(META_FIELDS) <= set(meta), f"{name}: missing {set(META_FIELDS) - set(meta)}"
    assert meta["source"].startswith("https://"), meta["source"]
    assert meta["licence"] and meta["bug"] and meta["fix"]
    assert meta["labels"] and set(meta["labels"]) <= set(LABELS), meta["labels"]
    assert meta["gate"] in GATES
    assert meta["expected"], name
    for e in meta["expected"]:
        assert set(e) == {"code", "new"} and isinstance(e["new"], bool), e
        assert re.fullmatch(r"[a-z_]+", e["code"]), e
        if not e["new"]:                      # a code said to exist must be in today's catalogue
            assert e["code"] in CODES, f"{name}: {e['code']} is not a doctor code (mark it new)"


@pytest.mark.parametrize("name", ALL + HELDOUT2)
def test_both_versions_build_and_give_a_finite_first_loss(name):
    module = realbugs.load(name)
    for fixed in (False, True):
        prog = module.build(0, fixed=fixed)
        assert isinstance(prog, Program)
        assert 0 < prog.steps <= 300 and prog.optimizer.param_groups
        xb, yb = next(batches(prog))
        with torch.no_grad():
            loss = prog.loss_fn(prog.model(xb), yb)
        assert loss.dim() == 0 and math.isfinite(float(loss)), (name, fixed, loss)


def test_seeded_builds_repeat_exactly():
    module = realbugs.load("so_68701979_sigmoid_plain_sgd")
    a, b = module.build(3, fixed=False), module.build(3, fixed=False)
    assert train(a)["losses"] == train(b)["losses"]


def _listed(markdown: str) -> set[str]:
    return set(re.findall(r"^- (\w+)", markdown, flags=re.M))


def test_heldout_md_lists_exactly_the_heldout_folder():
    listed = _listed((CORPUS / "HELDOUT.md").read_text())
    assert listed == {n.split(".")[-1] for n in realbugs.entry_names(held_out=True)}


def test_heldout2_md_lists_exactly_the_heldout2_folder_and_expects_only_existing_codes():
    listed = _listed((CORPUS / "HELDOUT2.md").read_text())
    assert listed == {n.split(".")[-1] for n in HELDOUT2}
    assert len(HELDOUT2) >= 12                       # issue 24: a held-out part the size of the first one
    assert not {n.split(".")[-1] for n in HELDOUT2} & {n.split(".")[-1] for n in ALL + DROPPED}
    for name in HELDOUT2:                            # written against today's catalogue, not placeholders
        assert all(not e["new"] for e in realbugs.load(name).META["expected"]), name


def test_an_unknown_part_is_a_usage_error(capsys):
    with pytest.raises(ValueError, match=r"'nope'; valid: tuned, heldout, heldout2"):
        realbugs.entry_names(part="nope")
    spec = importlib.util.spec_from_file_location("realbugs_scorer", CORPUS.parent / "realbugs.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    with pytest.raises(SystemExit) as exit_:
        scorer.main(["--gate", "--part", "nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "realbugs: unknown part 'nope'; valid parts: tuned, heldout, heldout2"
    assert realbugs.entry_names(part="heldout") == realbugs.entry_names(held_out=True)
    assert realbugs.entry_names(part="tuned") == realbugs.entry_names()


def test_dropped_md_lists_exactly_the_dropped_folder():
    listed = _listed((CORPUS / "DROPPED.md").read_text())
    assert listed == set(realbugs.entry_names(folder="dropped"))


def test_the_gate_rejects_a_fix_that_changes_nothing():
    """A pair whose 'fix' is the bug itself ties at every seed, and a tie is not a reproduction."""
    same = types.SimpleNamespace(build=lambda seed, fixed: realbugs.load("so_61234347_iris_raw_deep_tanh")
                                 .build(seed, fixed=False))
    result = gate(same, seeds=(0, 1))
    assert result["buggy"] == result["fixed"] and not result["passed"]


@pytest.mark.parametrize("name", ["so_68701979_sigmoid_plain_sgd", "so_61234347_iris_raw_deep_tanh",
                                  "gh_shah_077_iris_unscaled_per_sample"])
def test_three_entries_reproduce_at_two_seeds(name):
    torch.set_num_threads(1)
    result = gate(realbugs.load(name), seeds=(0, 1))
    assert result["passed"], result
    module = realbugs.load(name)                      # and the score is what evaluate() recomputes
    prog = module.build(0, fixed=True)
    train(prog)
    assert evaluate(prog) == pytest.approx(result["fixed"][0])
