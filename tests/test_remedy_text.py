"""The remedy's experiment link is said once (issue 28 item 1, last bullet): the terminal and the live doctor
print the action, then ``see: impediments reproduce X`` on a line of its own, never the link twice."""
from __future__ import annotations

from impediments.doctor.finding import Finding, Report
from impediments.doctor.rules.base import finding
from impediments.doctor.terminal import render_text
from impediments.playground.snapshot import finding_view


def _report(*findings) -> Report:
    return Report(list(findings), title="test")


def test_the_terminal_says_each_remedy_link_once():
    f = finding("dead_units", "error", ["hidden1.act"], {"dead_fraction": 1.0})
    assert f.remedy.endswith(f.see)                                   # the finding carries the link (JSON, HTML)
    text = render_text(_report(f), width=400)
    assert text.count("see: impediments reproduce") == 1, text
    fix_line = next(line for line in text.splitlines() if line.strip().startswith("fix:"))
    assert "see:" not in fix_line and fix_line.strip() == f"fix: {f.action}"
    assert f"   {f.see}" in text.splitlines()


def test_a_caused_remedy_and_a_rule_written_link_keep_their_own_words_once():
    symptom = Finding("loss_plateau", "warning", [], {}, "flat", "Caused by dead_units (reported above): fix that "
                      "first. Then: raise the rate; see: impediments reproduce glorot_he", caused_by="dead_units")
    assert symptom.action == "Caused by dead_units (reported above): fix that first. Then: raise the rate"
    assert symptom.link == "see: impediments reproduce glorot_he"
    own = Finding("symmetric_units", "error", [], {}, "same", "Random init; see: impediments reproduce zero_init "
                  "(and identical_init)")
    assert own.link == "see: impediments reproduce zero_init (and identical_init)"
    bare = Finding("dead_units", "error", [], {}, "dead", "Lower the rate")
    assert bare.action == "Lower the rate" and bare.link == bare.see
    text = render_text(_report(symptom, own), width=400)
    assert text.count("see: impediments reproduce") == 2


def test_the_live_doctor_shows_the_remedy_without_the_link_it_prints_below():
    f = finding("saturated_units", "warning", ["h.act"], {"saturated_fraction": 0.9})
    view = finding_view(f, remedies=[])
    assert "see: impediments" not in view["remedy"] and view["reproduce"] == f.see.removeprefix("see: ")
