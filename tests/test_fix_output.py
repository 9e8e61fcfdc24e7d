"""What ``impediments fix`` prints: remedy names in words, a table of at most 100 columns, and a change that
runs when appended to the spec (issue 28 item 2).

The snippet test applies each remedy the way a trial does (``REMEDIES[name](pieces, context)``), appends the
printed change to a copy of the example spec, loads that copy as the CLI does, and compares what it builds with
what the trial trained: the same parameters and modules under the same seed, the same learning rate. It runs
the model and optimizer remedies (init, activation, structure, learning rate) of the examples below; the other
slots (data, loop, loss) are printed as code to edit by hand, and are only checked to say so.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from impediments.cli.fix import SpecSource
from impediments.cli.spec import load_spec
from impediments.fix.remedies import REMEDIES, Context, NotApplicable, remedies_for
from impediments.fix.remedies.labels import LABELS, label
from impediments.fix.report import MODEL_SLOTS, FixReport, Row, placed_snippet
from impediments.fix.table import WIDTH
from impediments.fix.trial import Trial
from impediments.fix.verdict import Verdict
from impediments.train import default_optimizer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: examples and the codes `impediments fix` flags on them (examples/README.md), whose model and optimizer
#: remedies the snippet test runs
FLAGGED = {
    "dead_relu.py": ("dead_units", "loss_plateau", "vanishing_activations"),
    "zero_init.py": ("symmetric_units", "linear_regime", "loss_plateau"),
    "saturated_sigmoid.py": ("init_scale_too_large", "initial_loss_high", "saturated_units"),
    "diverging_lr.py": ("diverging_loss", "non_finite"),
    "dropout_before_bn.py": ("dropout_before_bn",),
}


def test_remedy_names_read_as_words():
    assert label("lr_up_27") == "learning rate ×27"
    assert label("lr_down_270") == "learning rate ÷270"
    assert label("lr_up_270000") == "learning rate ×270,000"
    assert "bias → 0" in label("variance_preserving_init")
    unlabelled = [n for n in REMEDIES if not n.startswith("lr_") and n not in LABELS]
    assert unlabelled == [], f"remedies without a display name: {unlabelled}"
    assert all("_" not in label(n) for n in REMEDIES)


def _report(spec=None) -> FixReport:
    """A report shaped like `impediments fix examples/dead_relu.py`'s, with its longest cells."""
    codes = ["dead_units", "loss_plateau", "output_head_mismatch", "vanishing_activations"]

    def trial(remedies, flagged=(), loss=2.3, acc=0.1):
        return Trial(remedies, 0, findings=[{"code": c, "severity": "warning"} for c in flagged], steps_run=100,
                     steps=100, train_loss=loss, val_loss=loss, val_acc=acc, wall_s=0.6,
                     changes=[{"remedy": r, "code": REMEDIES[r].fn.__name__, "note": ""} for r in remedies])

    rows = [Row(Verdict(("lsuv_init",), targets=codes, cleared=codes, verified=codes, metric_ok=True, delta=0.85),
                [trial(("lsuv_init",), loss=0.09, acc=0.956)]),
            Row(Verdict(("leaky_relu_swap",), cleared=["loss_plateau"], new=["vanishing_gradients"], delta=0.0),
                [trial(("leaky_relu_swap",), ["vanishing_gradients"])]),
            Row(Verdict(("lr_up_270000",), new=["diverging_loss"], delta=-0.002), [trial(("lr_up_270000",))]),
            Row(Verdict(("matched_output_activation",), errors=[
                "not applicable: no measured mismatch this remedy treats (saw constant_output; treats "
                "softmax_over_one_unit, targets_outside_output_range, relu_on_logits)"]), [])]
    settings = {"steps": 100, "batch_size": 64, "seeds": [0], "jobs": 1, "tolerance": 0.0143,
                "min_evidence_steps": 50, "metric": "val_acc", "val_examples": 360}
    report = FixReport("impediments fix examples/dead_relu.py", settings, [trial((), codes)], codes, rows,
                       spec=spec)
    report.chosen = rows[0]
    return report


def test_the_table_fits_100_columns_and_names_remedies_in_words():
    report = _report("examples/dead_relu.py")
    text = str(report)
    before_change = text.split("\nnot run: ")[0]                          # the heading, the table, its legend
    widths = [len(line) for line in before_change.splitlines()]
    assert max(widths) <= WIDTH, max(widths)
    for name in ("lsuv_init", "leaky_relu_swap", "lr_up_270000"):
        assert label(name) in text
    assert "lr_up_270000" not in before_change
    assert "\nnot run: output activation matched to the loss: not applicable: no measured mismatch" in text
    # every code of the wrapped cells is still there, whole
    assert all(code in before_change for code in ("dead_units", "output_head_mismatch", "vanishing_activations"))
    assert "append to the end of examples/dead_relu.py" in text


def _spec_copy(tmp_path: Path, example: str, snippet: str) -> Path:
    path = tmp_path / example
    shutil.copy(EXAMPLES / example, path)
    with open(path, "a") as f:
        f.write("\n\n" + snippet + "\n")
    return path


def _same_model(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return repr(a) == repr(b) and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _applicable(pieces, codes):
    names = {r.name for c in codes for r in remedies_for(c)}
    out = []
    for name in sorted(names):
        remedy = REMEDIES[name]
        if remedy.slot not in MODEL_SLOTS and getattr(remedy.fn, "factor", None) is None:
            continue
        try:
            out.append((name, remedy(pieces, Context((), 0))))
        except NotApplicable:
            pass
    return out


@pytest.mark.parametrize("example", sorted(FLAGGED))
def test_the_printed_change_runs_appended_to_the_spec_and_builds_what_the_trial_trained(example, tmp_path):
    pieces = SpecSource(str(EXAMPLES / example), None, None)()
    applied = _applicable(pieces, FLAGGED[example])
    assert applied, f"no model or learning-rate remedy applies to {example}"
    for name, change in applied:
        snippet = placed_snippet([{"remedy": name, "code": change.code, "note": change.note}], example)
        assert snippet.startswith(f"# append to the end of {example}")
        spec = load_spec(_spec_copy(tmp_path, example, snippet))
        torch.manual_seed(3)
        trained = change.pieces.model_fn()
        torch.manual_seed(3)
        printed = spec.module.model()
        assert _same_model(printed, trained), f"{example}: {name}: the snippet builds another model\n{snippet}"
        printed_optimizer = getattr(spec.module, "optimizer", default_optimizer)
        lr_printed = [g["lr"] for g in printed_optimizer(printed.parameters()).param_groups]
        lr_trained = [g["lr"] for g in change.pieces.opt_fn(trained.parameters()).param_groups]
        assert lr_printed == pytest.approx(lr_trained), f"{example}: {name}"


def test_a_model_and_a_learning_rate_change_go_together_and_other_changes_say_where_they_go(tmp_path):
    pieces = SpecSource(str(EXAMPLES / "dead_relu.py"), None, None)()
    ctx = Context((), 0)
    init, lr = REMEDIES["lsuv_init"](pieces, ctx), REMEDIES["lr_down_10"](pieces, ctx)
    snippet = placed_snippet([{"remedy": "lsuv_init", "code": init.code, "note": ""},
                              {"remedy": "lr_down_10", "code": lr.code, "note": ""}], "dead_relu.py")
    assert "X_train" in snippet and "split_data(data())" in snippet        # a marked function of the spec's data
    spec = load_spec(_spec_copy(tmp_path, "dead_relu.py", snippet))
    torch.manual_seed(0)
    net = spec.module.model()
    assert spec.module.optimizer(net.parameters()).param_groups[0]["lr"] == pytest.approx(0.01)   # default 0.1
    other = placed_snippet([{"remedy": "standardize_inputs", "code": "s = ...", "note": ""}], "raw_inputs.py")
    assert other.startswith("# standardized inputs: edit raw_inputs.py's own code")


def test_the_fix_html_names_remedies_in_words_and_keeps_the_keys_only_as_json_names():
    import re

    from impediments.report.fix_html import render_fix

    page = render_fix(_report("examples/dead_relu.py"))
    visible = re.sub(r'title="[^"]*"', "", re.sub(r"<code>[^<]*</code>", "", page.split("<h2>The change</h2>")[0]))
    for name in ("lsuv_init", "leaky_relu_swap", "lr_up_270000", "matched_output_activation"):
        assert name not in visible, name                             # the registry key: only as the JSON name
        assert label(name) in page
    assert "Chosen: <b>LSUV init, bias → 0</b> (<code>lsuv_init</code> in the JSON)" in page
