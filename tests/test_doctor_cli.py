"""``impediments doctor`` / ``checkup``: usage errors (exit 2) and the shipped examples (exit 0 / 1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from impediments.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _spec(tmp_path, text, name="spec.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("command", ["doctor", "checkup"])
def test_missing_spec_file(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["doctor", "checkup"])
def test_spec_without_model_or_data(tmp_path, capsys, command):
    path = _spec(tmp_path, "def data():\n    return 'digits'\n")
    assert main([command, path]) == 2
    assert "model" in capsys.readouterr().err
    path = _spec(tmp_path, "import torch\ndef model():\n    return torch.nn.Linear(2, 2)\n")
    assert main([command, path]) == 2
    assert "data" in capsys.readouterr().err


def test_spec_that_raises(tmp_path, capsys):
    path = _spec(tmp_path, "raise RuntimeError('boom in spec')\n")
    assert main(["doctor", path]) == 2
    assert "boom in spec" in capsys.readouterr().err
    path = _spec(tmp_path, "def model():\n    raise KeyError('no such layer')\ndef data():\n    return 'digits'\n")
    assert main(["checkup", path]) == 2
    assert "model() raised KeyError" in capsys.readouterr().err


def test_bad_data_and_model_types(tmp_path, capsys):
    path = _spec(tmp_path, "def model():\n    return 3\ndef data():\n    return 'digits'\n")
    assert main(["checkup", path]) == 2
    assert "nn.Module" in capsys.readouterr().err
    path = _spec(tmp_path, "import torch\ndef model():\n    return torch.nn.Linear(64, 10)\n"
                           "def data():\n    return 'no_such_dataset'\n")
    assert main(["checkup", path]) == 2
    assert "no_such_dataset" in capsys.readouterr().err


def test_model_with_nothing_to_watch(tmp_path, capsys):
    path = _spec(tmp_path, "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x * 2\n"
                           "def model():\n    return M()\n"
                           "def data():\n    return torch.randn(8, 3), torch.randn(8, 3)\n")
    assert main(["checkup", path]) == 2
    assert "watch" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--json", "--html"])
def test_report_path_in_missing_folder(tmp_path, capsys, flag):
    out = tmp_path / "missing" / "r.out"
    assert main(["checkup", str(EXAMPLES / "healthy_mlp.py"), flag, str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.parent.exists()


def test_bad_steps_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["doctor", str(EXAMPLES / "healthy_mlp.py"), "--steps", "0"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------------------------- the shipped examples
def test_healthy_example_exits_zero_and_writes_reports(tmp_path, capsys):
    js, html = tmp_path / "r.json", tmp_path / "r.html"
    assert main(["doctor", str(EXAMPLES / "healthy_mlp.py"), "--steps", "20", "--json", str(js),
                 "--html", str(html)]) == 0
    assert "impediments doctor" in capsys.readouterr().out
    doc = json.loads(js.read_text())
    assert doc["schema"] == "impediments.doctor.report" and doc["summary"]["worst"] in (None, "info")
    assert doc["summary"]["counts"]["warning"] == doc["summary"]["counts"]["error"] == 0
    assert doc["stats"]["steps"] == 20 and doc["stats"]["loss"]["count"] == 20
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]     # no temp files left


@pytest.mark.parametrize("command,example,code", [
    ("checkup", "dead_relu.py", "dead_units"),
    ("checkup", "zero_init.py", "symmetric_units"),
    ("checkup", "raw_inputs.py", "uncentered_inputs"),
    ("checkup", "small_batch_bn.py", "bn_small_batch"),
    ("doctor", "dropout_before_bn.py", "dropout_before_bn"),
    ("checkup", "saturated_lstm.py", "saturated_units"),       # gates of a fused nn.LSTM, recomputed
])
def test_broken_examples_exit_one(tmp_path, capsys, command, example, code):
    js = tmp_path / "r.json"
    argv = [command, str(EXAMPLES / example), "--json", str(js)] + (["--steps", "5"] if command == "doctor" else [])
    assert main(argv) == 1
    assert code in capsys.readouterr().out
    assert code in json.loads(js.read_text())["summary"]["codes"]


def test_threshold_overrides_change_the_verdict_and_bad_ones_are_usage_errors(tmp_path, capsys):
    js = tmp_path / "r.json"
    spec = str(EXAMPLES / "dead_relu.py")
    assert main(["checkup", spec, "--json", str(js)]) == 1
    dead = [f for f in json.loads(js.read_text())["findings"] if f["code"] == "dead_units"]
    assert dead and {f["severity"] for f in dead} & {"warning", "error"}
    # no fraction of dead units reaches 1.01, and no layer counts as dead as a whole below an active rate of 0:
    # the same layers are now reported as info only
    main(["checkup", spec, "--json", str(js), "--threshold", "dead_warning=1.01", "--threshold", "dead_error=1.01",
          "--threshold", "dead_layer_rate=0"])
    dead = [f for f in json.loads(js.read_text())["findings"] if f["code"] == "dead_units"]
    assert dead and {f["severity"] for f in dead} == {"info"}
    capsys.readouterr()
    assert main(["checkup", spec, "--threshold", "dead_eror=0.5"]) == 2
    err = capsys.readouterr().err
    assert "dead_eror" in err and "dead_error" in err and "valid:" in err
    assert main(["doctor", spec, "--steps", "3", "--threshold", "dead_error=-1"]) == 2
    assert "dead_error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["checkup", spec, "--threshold", "dead_error"])
    assert exc.value.code == 2 and "NAME=NUMBER" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- user errors: one line, exit 2
_MISMATCH_IN_FORWARD = '''import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 32)
        self.b = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h)   # the bad line


def model():
    return Net()


def data():
    return torch.randn(32, 64), torch.randint(0, 10, (32,))
'''
_MISMATCH_IN_SEQUENTIAL = '''import torch
from torch import nn


def model():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(16, 10))


def data():
    return torch.randn(32, 64), torch.randint(0, 10, (32,))
'''


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("command", ["doctor", "checkup"])
def test_model_failing_in_its_own_code_is_one_line_naming_the_spec_line(tmp_path, capsys, command):
    steps = ["--steps", "2"] if command == "doctor" else []
    path = _spec(tmp_path, _MISMATCH_IN_FORWARD)
    assert main([command, path, *steps]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{path}:{_line_of(_MISMATCH_IN_FORWARD, 'the bad line')} (in forward)" in err
    assert "mat1 and mat2 shapes cannot be multiplied" in err
    # all in torch's own layers: the line of the spec's model() that built them
    path = _spec(tmp_path, _MISMATCH_IN_SEQUENTIAL, "seq.py")
    assert main([command, path, *steps]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}:{_line_of(_MISMATCH_IN_SEQUENTIAL, 'def model')}" in err


def test_targets_that_do_not_fit_the_default_loss_name_data(tmp_path, capsys):
    text = _MISMATCH_IN_SEQUENTIAL.replace("nn.Linear(16, 10)", "nn.Linear(32, 10)").replace(
        "torch.randint(0, 10, (32,))", "torch.randn(32, 3)")               # float targets of the wrong width
    path = _spec(tmp_path, text)
    assert main(["checkup", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}:{_line_of(text, 'def data')} (the targets of data()" in err


def test_a_bug_in_impediments_itself_keeps_its_traceback(tmp_path, monkeypatch):
    """Only the spec's own failures become usage errors: one raised inside the monitor propagates."""
    from impediments.monitor.probes import symmetry

    monkeypatch.setattr(symmetry, "due", None)     # the monitor's own code now raises TypeError
    path = _spec(tmp_path, _MISMATCH_IN_SEQUENTIAL.replace("nn.Linear(16, 10)", "nn.Linear(32, 10)"))
    with pytest.raises(TypeError, match="not callable"):
        main(["doctor", path, "--steps", "2"])


def _unwritable_folder(tmp_path) -> Path:
    """A folder no file can be created in, even by root (who ignores permission bits): /proc."""
    import os

    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("flag", ["--json", "--html", "--tensorboard"])
def test_unwritable_outputs_are_refused_before_training(tmp_path, capsys, flag):
    marker = tmp_path / "model_built"
    path = _spec(tmp_path, _MISMATCH_IN_SEQUENTIAL.replace(
        "def model():\n", f"def model():\n    open({str(marker)!r}, 'w').close()\n"))
    target = _unwritable_folder(tmp_path) / "report.out"
    assert main(["doctor", path, "--steps", "2", flag, str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag in err and "not writable" in err
    assert not marker.exists()                      # refused before the spec's model was even built
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["doctor", path, "--steps", "2", flag, str(blocker / "out")]) == 2
    assert str(blocker) in capsys.readouterr().err and not marker.exists()
