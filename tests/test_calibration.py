"""A fast subset of the calibration corpus (benchmarks/calibration/): healthy standard architectures
must get no warning or error, injected faults must be found, and the benchmark's bookkeeping is
checked against counts done by hand. The whole corpus runs in ``benchmarks/calibration.py``."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from impediments.doctor import CODES

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str, path: Path):
    """Import the benchmark file or package at ``path`` as ``name`` (benchmarks/ is not on ``sys.path``)."""
    package = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(name, path,
                                                  submodule_search_locations=[str(path.parent)] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


calibration = load_benchmark("calibration", BENCHMARKS / "calibration" / "__init__.py")
ARCHITECTURES, FAULTS, HELD_OUT, INJECTIONS, run_case = (calibration.ARCHITECTURES, calibration.FAULTS,
                                                         calibration.HELD_OUT, calibration.INJECTIONS,
                                                         calibration.run_case)

# Each pair stands for a family: a depthwise BN convnet, a gated (SE + SiLU) convnet, a plain
# convnet on digits, a decoder transformer, an encoder with a tanh pooler, a recurrent LM.
HEALTHY = ["mobilenet_v2", "efficientnet", "lenet5", "gpt2", "bert", "lstm_lm"]
FAULTY = [("lenet5", "negative_bias"), ("vit", "identical_init"), ("gpt2", "lr_too_high"),
          ("mobilenet_v2", "batch_2"), ("vgg11_bn", "left_in_eval"), ("lenet5", "log_of_outputs"),
          ("gpt2", "no_zero_grad")]
STEPS = 30


def test_corpus_covers_the_standard_architectures_and_every_injection_is_known():
    main = [a for a in ARCHITECTURES.values() if not a.held_out]
    assert len(main) >= 20
    assert {a.family for a in main} == {"cnn", "transformer", "recurrent"}
    assert set(HELD_OUT) <= set(ARCHITECTURES) and all(ARCHITECTURES[n].held_out for n in HELD_OUT)
    calibration.faults.check_injections(ARCHITECTURES)
    for inj in INJECTIONS:
        assert inj.fault in FAULTS
        assert all(c in CODES for c in inj.expected), inj
    per_code = {}
    for inj in INJECTIONS:
        if not ARCHITECTURES[inj.arch].held_out:
            for code in inj.expected:
                per_code.setdefault(code, set()).add(inj.arch)
    # "each on several architectures": at least 3 architectures per fault code, except the
    # single-mechanism ones (activations growing/shrinking through a plain net, LR-driven gradient blow-up), and
    # no_nonlinearity: only LeNet-5 has no normalization, attention or gate, which stay nonlinear without activations
    thin = {c for c, archs in per_code.items() if len(archs) < 3}
    assert thin <= {"exploding_activations", "vanishing_activations", "exploding_gradients", "no_nonlinearity"}, per_code


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_builds_with_the_task_shapes(name):
    arch = ARCHITECTURES[name]
    torch.manual_seed(0)
    X, y = arch.data(0)
    out = arch.build()(X[:3])
    loss = arch.loss(out, y[:3])
    assert math.isfinite(float(loss.detach()))
    classes = {"images": 10, "digits": 10, "chains": 2, "language": 32}[arch.task]
    assert int(y.max()) == classes - 1 and int(y.min()) == 0
    assert out.shape == (*y[:3].shape, classes)      # (3, classes), or (3, T, vocab) for next-token targets


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_architecture_learns_and_gets_no_warning_or_error(name):
    row = run_case(name, steps=STEPS)
    assert row["loss_last"] < row["loss_first"] - 0.05, row        # the task is learnable with this recipe
    severe = [f for f in row["checkup"] + row["training"] if f["severity"] != "info"]
    assert not severe, json.dumps(severe, indent=1)[:2000]


@pytest.mark.parametrize("arch,fault", FAULTY)
def test_injected_fault_is_found(arch, fault):
    inj = next(i for i in INJECTIONS if (i.arch, i.fault) == (arch, fault))
    row = run_case(arch, fault, steps=STEPS, expected=inj.expected)
    assert not row["unsupported"], f"the doctor has no code {row['unsupported']}"
    assert not row["missed"], f"missed {row['missed']}; found {row['codes']}; {row['flagged']}"


def test_run_case_restores_thread_count_and_reports_both_phases():
    threads = torch.get_num_threads()
    row = run_case("lenet5", "raw_pixels", steps=3, expected=("uncentered_inputs",))
    assert torch.get_num_threads() == threads
    assert row["steps_run"] == 3 and row["fault"] == "raw_pixels"
    assert set(row["codes"]) == {f["code"] for f in row["checkup"] + row["training"]}
    assert set(row["flagged"]) == {f["code"] for f in row["checkup"] + row["training"] if f["severity"] != "info"}


def test_summary_counts_match_a_hand_count():
    cli = load_benchmark("calibration_cli", BENCHMARKS / "calibration.py")

    def row(arch, fault, expected, codes, flagged=(), unsupported=()):
        return {"arch": arch, "fault": fault, "expected": list(expected), "codes": list(codes),
                "flagged": list(flagged), "missed": [c for c in expected if c not in codes],
                "unsupported": list(unsupported), "checkup": [], "training": [], "loss_first": 1.0,
                "loss_last": 0.5}
    rows = [row("a", None, (), ["weight_decay_with_bn"]), row("b", None, (), ["dead_units"], ["dead_units"]),
            row("c", None, (), []),
            row("a", "f1", ["dead_units"], ["dead_units"]), row("b", "f1", ["dead_units"], []),
            row("a", "f2", ["diverging_loss", "non_finite"], ["non_finite"], ["non_finite"]),
            row("c", "f3", ["model_in_eval_mode"], [], unsupported=["model_in_eval_mode"])]
    s = cli.summarize(rows)
    assert (s["healthy"], s["false_alarms"], s["false_alarm_codes"]) == (3, 1, {"b": ["dead_units"]})
    assert (s["injected"], s["found"]) == (4, 1)
    assert s["recall_per_code"] == {
        "dead_units": {"found": 1, "injected": 2, "unsupported": False, "warning_or_error": 0},
        "diverging_loss": {"found": 0, "injected": 1, "unsupported": False, "warning_or_error": 0},
        "model_in_eval_mode": {"found": 0, "injected": 1, "unsupported": True, "warning_or_error": 0},
        "non_finite": {"found": 1, "injected": 1, "unsupported": False, "warning_or_error": 1}}
    text = cli.report(rows, s)
    assert "1 of 3 (33%)" in text and "faults found: 1 of 4 (25%)" in text


def test_cli_writes_json_and_rejects_unknown_or_held_out_names(tmp_path, capsys):
    cli = load_benchmark("calibration_cli", BENCHMARKS / "calibration.py")
    out = tmp_path / "cal.json"
    assert cli.main(["--only", "lenet5", "--faults", "raw_pixels", "--steps", "3", "--workers", "1",
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [(r["arch"], r["fault"]) for r in doc["rows"]] == [("lenet5", None), ("lenet5", "raw_pixels")]
    assert doc["summary"]["injected"] == 1 and doc["summary"]["healthy"] == 1
    for bad in (["--only", "alexnet"], ["--only", HELD_OUT[0]]):
        with pytest.raises(SystemExit) as exc:
            cli.main(bad)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "alexnet" in err or "held out" in err
