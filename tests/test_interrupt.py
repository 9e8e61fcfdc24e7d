"""Ctrl-C on a long command: one line with the resume hint, a stop within 2 s (workers too), exit 130.

A real ``impediments reproduce`` runs in its own process group, and SIGINT goes to the whole group, as a
terminal's Ctrl-C does; the cache must keep every (experiment, seed) pair that finished.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from impediments.cli import interrupted_line
from impediments.experiments.runner import cached_record

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(args: list[str]) -> subprocess.Popen:
    # its own session, so that killpg reaches it and its workers and nothing else; SIGINT at its default
    # disposition (a shell that starts the suite in the background leaves it ignored, and Python keeps that)
    return subprocess.Popen([sys.executable, "-m", "impediments.cli", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_after_first_finished_pair(proc: subprocess.Popen) -> tuple[list[str], float]:
    """Read progress until one (experiment, seed) pair has run, then Ctrl-C the process group."""
    lines = []
    while True:
        line = proc.stderr.readline()
        assert line, f"ended before any pair finished: {lines}"
        lines.append(line.rstrip("\n"))
        if re.match(r"\[\d+/\d+\] \w+ seed \d+: \d+\.\d s$", lines[-1]):
            break
    os.killpg(proc.pid, signal.SIGINT)
    return lines, time.monotonic()


def test_reproduce_ctrl_c_with_workers_stops_in_2_s_with_one_line_and_keeps_the_cache(tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", "zigzag", "glorot_he", "bn_dropout", "--quick", "--seeds", "0-3", "--jobs", "2",
            "--out", str(out)]
    proc = _start(args)
    lines, sent = _interrupt_after_first_finished_pair(proc)
    workers = _children(proc.pid)
    assert workers, "the run was expected to have worker processes"
    rest, err = proc.communicate(timeout=30)
    stopped = time.monotonic() - sent
    err_lines = [*lines, *err.splitlines()]
    assert proc.returncode == 130, err_lines
    assert stopped < 2.0, f"took {stopped:.1f} s to stop"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1] == interrupted_line("reproduce", args), err
    assert len([l for l in err.splitlines() if "interrupted" in l]) == 1, err
    deadline = time.monotonic() + 2
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "worker processes outlived the interrupt"

    finished = [l for l in err_lines if re.match(r"\[\d+/\d+\] \w+ seed \d+: \d+\.\d s$", l)]
    assert len(list((out / ".cache").glob("*-*.json"))) >= len(finished) >= 1
    assert not (out / "notebook.html").exists()
    for pair in finished:                                   # a resumed run reads each finished pair from the cache
        name, seed = re.match(r"\[\d+/\d+\] (\w+) seed (\d+):", pair).groups()
        assert cached_record(name, int(seed), True, out) is not None, pair


def test_reproduce_ctrl_c_in_one_process_is_one_line_and_exit_130(tmp_path):
    args = ["reproduce", "zigzag", "glorot_he", "--quick", "--seeds", "0-3", "--jobs", "1", "--out",
            str(tmp_path / "out")]
    proc = _start(args)
    _, sent = _interrupt_after_first_finished_pair(proc)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 2.0, err
    assert err.splitlines()[-1] == interrupted_line("reproduce", args) and "Traceback" not in err, err


def test_interrupted_line_quotes_the_arguments_so_the_hint_can_be_pasted():
    line = interrupted_line("reproduce", ["reproduce", "--quick", "--out", "my out"])
    assert line == "impediments reproduce: interrupted; resume with: impediments reproduce --quick --out 'my out'"
    assert interrupted_line("fix", ["fix", "spec.py"]).endswith("run it again with: impediments fix spec.py")
