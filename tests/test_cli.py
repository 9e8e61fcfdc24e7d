import subprocess
import sys
from pathlib import Path

import pytest

from impediments import __version__
from impediments.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out


def test_help_and_no_command(capsys):
    assert main([]) == 2
    assert "reproduce" in capsys.readouterr().out


def test_unknown_command_is_usage_error():
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_list_runs(capsys):
    assert main(["list"]) == 0


def test_reproduce_unknown_name_exit_2(capsys):
    assert main(["reproduce", "no_such_experiment"]) == 2
    assert "no_such_experiment" in capsys.readouterr().err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "impediments.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_reproduce_unwritable_out_is_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["reproduce", "zigzag", "--quick", "--out", str(blocker / "sub")]) == 2
    assert str(blocker) in capsys.readouterr().err


def test_closed_stdout_is_a_clean_exit():
    """``impediments list | head``: the reader leaves early; no traceback, exit 0 (a pipe closed before
    the first write makes every write fail, deterministically)."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([sys.executable, "-m", "impediments.cli", "list"], stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert out.returncode == 0 and out.stderr == ""


def test_closed_stdout_keeps_the_doctors_verdict_and_files(tmp_path, monkeypatch):
    """``impediments checkup SPEC | head``: the findings still set exit 1 and the report is written."""
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    spec = Path(__file__).resolve().parents[1] / "examples" / "dead_relu.py"
    assert main(["checkup", str(spec), "--json", str(tmp_path / "r.json")]) == 1
    assert (tmp_path / "r.json").exists()
