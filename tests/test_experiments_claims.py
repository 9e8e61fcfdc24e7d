"""Claims written once (the restricted condition evaluator) and judged over seeds (t interval, verdicts).

References: Python's own evaluation of the same arithmetic, scipy's t interval,
numpy's mean/min/max for the averaged results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from impediments.experiments.aggregate import band, mean_result
from impediments.experiments.claims import Claim, ConditionError, claim, parse
from impediments.experiments.verdict import FAILS, HOLDS, INCONCLUSIVE, combine, over_seeds, summarize


@pytest.mark.parametrize("text, values, margins", [
    ("a - b >= 0.5", {"a": 3.0, "b": 1.0}, [1.5]),
    ("a / b > 3", {"a": 12.0, "b": 2.0}, [3.0]),
    ("x <= 1e-4", {"x": 0.0}, [1e-4]),
    ("4.5 <= s <= 5.5", {"s": 5.0}, [0.5, 0.5]),
    ("abs(c / p - 1) <= 0.15 and c2 <= 1.5", {"c": 11.0, "p": 10.0, "c2": 1.0}, [0.05, 0.5]),
    ("log10(max(a, b)) >= 2 and -a < sqrt(b)", {"a": 10.0, "b": 1000.0}, [1.0, 10 + math.sqrt(1000)]),
    ("log(a) > 1", {"a": math.e ** 2}, [1.0]),
])
def test_margins_match_python_arithmetic(text, values, margins):
    cond = parse(text)
    assert cond.margins(values) == pytest.approx(margins)
    assert cond.holds(values) is all(m >= 0 for m in margins)
    assert cond.names == set(values)


def test_quantity_text_is_the_margin_with_its_side():
    (q,) = parse("acc_std >= acc_raw + 0.05").quantities
    assert q.margin_text == "acc_std - (acc_raw + 0.05)" and q.margin_side == ">= 0" and q.inclusive
    (q,) = parse("err < 0.1").quantities
    assert q.margin_text == "0.1 - err" and q.margin_side == "> 0" and not q.inclusive
    (q,) = parse("gap > 0").quantities
    assert q.margin_text == "gap"


@pytest.mark.parametrize("text", [
    "__import__('os').system('true') > 0", "a.real > 0", "a == b", "a != b", "a > 0 or b > 0", "not a > 0",
    "a[0] > 0", "(lambda: 1)() > 0", "a > 'x'", "a", "a > 0 and b", "round(a) > 0", "abs(a, key=1) > 0",
    "a // 2 > 0", "a > True", "[a][0] > 0", "a if b else c > 0", "a >",
])
def test_anything_outside_the_grammar_is_rejected(text):
    with pytest.raises(ConditionError):
        parse(text)


def test_a_claim_checks_its_names_when_made():
    with pytest.raises(ConditionError, match="acc_raw"):
        claim("t", "s", {"acc_std": 0.9}, "acc_std > acc_raw")
    with pytest.raises(ConditionError, match="labels"):
        claim("t", "s", {"a": 1.0}, "a > 0", labels={"b": "not measured"})
    c = claim("t", "s", {"a": np.float32(2.0), "ok": np.bool_(True)}, "a > 1 and ok >= 1")
    assert c.passed is True and Claim.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("values", [[0.3, 0.5, 0.4, 0.45, 0.2], [0.1, -0.2, 0.3], [-1.0, -1.2, -0.9, -1.1]])
def test_interval_is_students_t(values):
    q = summarize("x > 0", "x", "> 0", False, values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (q.low, q.high) == pytest.approx((low, high)) and q.mean == pytest.approx(np.mean(values))
    assert q.effect_size == pytest.approx(np.mean(values) / np.std(values, ddof=1))
    assert q.verdict == (HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE)


def test_verdict_edges():
    assert summarize("x >= 0", "x", ">= 0", True, [0.0, 0.0, 0.0]).verdict == HOLDS   # exactly on an inclusive side
    assert summarize("x > 0", "x", "> 0", False, [0.0, 0.0, 0.0]).verdict == FAILS    # never strictly positive
    # a margin that is infinite at a seed (a target never reached): the interval is the per-seed range
    q = summarize("a > b", "a - b", "> 0", False, [math.inf, 3.0, 5.0])
    assert (q.low, q.high, q.interval, q.verdict) == (3.0, math.inf, "range", HOLDS)
    assert summarize("a > b", "a - b", "> 0", False, [math.inf, -3.0]).verdict == INCONCLUSIVE
    assert summarize("a > b", "a - b", "> 0", False, [math.nan, 3.0]).verdict == INCONCLUSIVE
    assert combine([HOLDS, HOLDS]) == HOLDS and combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([INCONCLUSIVE, FAILS, HOLDS]) == FAILS


def test_over_seeds_matches_claims_by_position_and_rejects_seed_dependent_conditions():
    per_seed = {s: [claim("a", "src", {"x": 1.0 + s / 10, "y": 0.5}, "x - y > 0", paper="1.0"),
                    claim("b", "src", {"z": 0.1 * (s - 1)}, "z > 0", inconclusive_reason="small")] for s in range(3)}
    a, b = over_seeds(per_seed)
    assert a.seeds == [0, 1, 2] and a.measured == {"x": [1.0, 1.1, 1.2], "y": [0.5, 0.5, 0.5]}
    assert a.quantities[0].values == pytest.approx([0.5, 0.6, 0.7]) and a.verdict == HOLDS and a.paper == "1.0"
    assert b.verdict == INCONCLUSIVE and b.to_dict()["inconclusive_reason"] == "small"
    assert type(a).from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="seed-dependent"):
        over_seeds({0: [claim("a", "s", {"x": 1.0}, "x > 0")], 1: [claim("a", "s", {"x": 1.0}, "x > 1")]})
    with pytest.raises(ValueError, match="numbers of claims"):
        over_seeds({0: [claim("a", "s", {"x": 1.0}, "x > 0")], 1: []})


@dataclass
class _R:
    curve: np.ndarray
    per_lr: list
    table: dict
    path: list
    steps: int
    name: str


def test_mean_and_band_over_seeds():
    rs = [_R(curve=np.array([1.0, 2.0]) * (s + 1), per_lr=[s, 2 * s], table={"a": [s, 1]}, path=[[0]] * (s + 1),
             steps=7, name="x") for s in range(3)]
    m = mean_result(rs)
    np.testing.assert_allclose(m.curve, np.mean([r.curve for r in rs], axis=0))
    assert m.per_lr == [1.0, 2.0] and m.table == {"a": [1.0, 1]} and m.name == "x"
    assert m.steps == 7 and isinstance(m.steps, int)          # the same at every seed: kept as it is
    assert m.path == rs[0].path                              # paths of different lengths: the first seed's
    b = band(rs)
    np.testing.assert_allclose(b.low.curve, [1.0, 2.0])
    np.testing.assert_allclose(b.high.curve, [3.0, 6.0])
    assert b.low.per_lr == [0, 0] and b.high.per_lr == [2, 4] and b.seeds == 3


#: the claims that show a published number beside ours (``Claim.paper``), by experiment and the start of the
#: claim's text, from /work/shared/references.md and the papers the experiments cite (issue 27 item 3). A claim
#: that gains or loses its paper number must be listed or unlisted here, so the list stays the truth.
PUBLISHED = {
    "activations": ("Sigmoid saturates for", "Sigmoid's derivative never exceeds"),
    "linear_depth": ("One Linear layer on MNIST-1D", "With an active non-linearity"),
    "zigzag": ("Shifting the inputs away from zero", "LeCun et al. 1998 on digits"),
    "depth_distributions": ("The pre-activation variance is",),
    "glorot_he": ("The layer-to-layer Jacobians",),
    "autoencoder_pca": ("A linear autoencoder", "The linear encoder's weights"),
    "bn_sigmoid": ("BN ends no worse",),
    "bn_learning_rates": ("BN facilitates much higher", "BN speeds training", "Without BN, a learning rate 5"),
    "bn_gradient_scale": ("BN is invariant to the scale",),
    "bn_inference": ("Training normalizes with the biased",),
    "bn_dropout": ("Dropout right before BN", "With dropout (0.5) after the last BN the trained"),
    "l2_with_bn": ("Scaling the weights that feed", "The gradient scales as", "The effective learning rate is"),
    "small_batch_norms": ("BN degrades at small batches", "Why GN and LN stay flat"),
}


def test_the_claims_with_a_published_number_are_the_listed_ones(quick_run):
    from impediments import experiments

    assert set(PUBLISHED) <= set(experiments.names())
    for name in experiments.names():
        module, result = quick_run(name, 0)
        carried = [c for c in module.claims(result) if c.paper]
        listed = PUBLISHED.get(name, ())
        assert sorted(p for c in carried for p in listed if c.text.startswith(p)) == sorted(listed), \
            (name, [c.text[:60] for c in carried])
        assert len(carried) == len(listed), (name, "unlisted paper numbers", [c.text[:60] for c in carried])
        for c in carried:
            assert any(ch.isdigit() for ch in c.paper), (name, "a paper field with no number", c.paper)
