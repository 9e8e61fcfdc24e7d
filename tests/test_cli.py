import subprocess
import sys
from pathlib import Path

import pytest

from impediments import __version__, experiments
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


def test_list_prints_every_experiment_module_with_its_description(capsys):
    """The names listed are the registry's, in order, and the registry holds every experiment module on
    disk (so an empty or partial registry fails here instead of listing nothing with exit 0)."""
    assert main(["list"]) == 0
    rows = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    on_disk = {p.stem for part in ("part1", "part2")
               for p in (Path(experiments.__file__).parent / part).glob("*.py") if not p.stem.startswith("_")}
    assert len(on_disk) >= 10
    assert [name for name, _ in rows] == experiments.names()
    assert set(experiments.names()) == on_disk
    assert all(description == experiments.description(name) and description for name, description in rows)


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
