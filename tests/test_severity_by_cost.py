"""Severity by measured cost (issue 24 item 5) for growing activations, and a loss that falls below zero."""
from impediments.doctor import diagnose
from impediments.doctor.rules.base import loss_drop
from test_doctor_rules import act, loss, stats


def _growing(kind="relu", sat=0.0, means=None):
    """Four ReLU (or tanh) layers whose pre-activation variance grows 10x per layer (3 decades)."""
    acts = {f"a{i}": act(f"a{i}", kind=kind, depth=i, in_var=10.0 ** i, sat=sat, lin=0.1) for i in range(4)}
    return stats(activations=acts, loss=None if means is None else loss(means))


def _severity(s):
    return {f.severity for f in diagnose(s).findings if f.code == "exploding_activations"}


def test_growing_activations_are_a_warning_until_the_run_shows_no_cost():
    assert _severity(_growing()) == {"warning"}                                    # checkup: no loss trend
    assert _severity(_growing(means=[100.0, 95.0, 96.0, 94.0, 95.0, 96.0])) == {"warning"}     # loss stuck
    falling = [100.0, 40.0, 10.0, 5.0, 2.0, 1.0]
    info = [f for f in diagnose(_growing(means=falling)).findings if f.code == "exploding_activations"]
    assert [f.severity for f in info] == ["info"] and info[0].evidence["loss_drop"] > 0.9
    # a saturating activation saturated at the growing layers: the cost is there whatever the loss did
    assert _severity(_growing(kind="tanh", sat=0.8, means=falling)) == {"warning"}


def test_a_loss_below_zero_is_no_evidence_of_learning():
    assert loss_drop(stats(loss=loss([0.6, 0.1, -2.0, -5.0, -9.0, -9.5]))) is None
    assert loss_drop(stats(loss=loss([0.6, 0.5, 0.4, 0.3, 0.3, 0.3]))) == 0.5
    assert _severity(_growing(means=[0.6, 0.1, -2.0, -5.0, -9.0, -9.5])) == {"warning"}
