"""Ctrl-C on a long command: one line with the resume hint, a stop within 2 s (workers too), exit 130.

Real ``impediments`` commands run in their own process group, and SIGINT goes to the whole group, as a
terminal's Ctrl-C does; ``reproduce``'s cache must keep every (experiment, seed) pair that finished
(tests/test_reproduce.py checks that a rerun reads such entries instead of running them again).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from impediments.cli import interrupted_line

ROOT = Path(__file__).resolve().parent.parent
FINISHED_PAIR = r"^\[\d+/\d+\] \w+ seed \d+: \d+\.\d s$"


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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Watched:
    """A real ``impediments`` command in its own process group, its stderr lines timestamped as they arrive."""

    def __init__(self, args: list[str]) -> None:
        self.args, self.lines, self.sent = args, [], None
        # its own session, so that killpg reaches it and its workers and nothing else; SIGINT at its default
        # disposition (a shell that starts the suite in the background leaves it ignored, and Python keeps that)
        self.proc = subprocess.Popen([sys.executable, "-m", "impediments.cli", *args], cwd=ROOT, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for _, line in list(self.lines) if re.search(pattern, line)]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"ended before {pattern!r}: {self.text()}"
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} within {timeout} s: {self.text()}")

    def ctrl_c(self) -> None:
        """SIGINT to the whole process group, as a terminal's Ctrl-C."""
        self.sent = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self) -> tuple[float, float]:
        """(seconds from Ctrl-C to the interrupted line, seconds from Ctrl-C to the exit)."""
        self.proc.wait(timeout=60)
        exited = time.monotonic()
        self.reader.join(timeout=10)
        said = [t for t, line in self.lines if "interrupted" in line]
        assert said, self.text()
        return said[0] - self.sent, exited - self.sent

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def check_one_line(self, command: str) -> None:
        """Exit 130, no traceback, and exactly one interrupted line, the last, naming the command to rerun.

        Exit 130 is what a shell reports ($?). The command returns 130; but when Ctrl-C lands while scipy is
        being imported (pulled in by the first data load; seen in a faulthandler dump of the signal), CPython
        ends the process by re-raising SIGINT after finalization although ``main`` caught the
        KeyboardInterrupt and printed its line. A shell shows 130 for that death too (checked with bash), so
        both are the exit the user sees. Measured: 9 of 12 Ctrl-Cs sent 0.1-0.2 s after the spec's data load.
        """
        assert self.proc.returncode in (130, -signal.SIGINT), (self.proc.returncode, self.text())
        assert "Traceback" not in self.text() and "KeyboardInterrupt" not in self.text(), self.text()
        expected = interrupted_line(command, self.args)
        assert [line for _, line in self.lines if "interrupted" in line] == [expected], self.text()
        assert self.lines[-1][1] == expected


def teardown_seconds() -> float:
    """How long an interpreter that imported torch takes to exit on this machine now: every command pays
    it, and under a heavy load it alone can exceed a second."""
    proc = subprocess.Popen([sys.executable, "-c", "import torch, impediments; print('end', flush=True)"],
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    start = time.monotonic()
    proc.wait(timeout=60)
    return time.monotonic() - start


def test_reproduce_ctrl_c_with_workers_stops_in_2_s_with_one_line_and_keeps_the_cache(tmp_path):
    out = tmp_path / "out"
    run = Watched(["reproduce", "zigzag", "glorot_he", "bn_dropout", "--quick", "--seeds", "0-3", "--jobs", "2",
                   "--out", str(out)])
    run.wait_for(FINISHED_PAIR)
    workers = {pid for pid in _children(run.proc.pid) if "resource_tracker" not in _cmdline(pid)}
    assert workers, "the run was expected to have worker processes"
    run.ctrl_c()
    to_line, to_exit = run.finish()
    run.check_one_line("reproduce")
    assert to_line < 2.0, f"{to_line:.1f} s from Ctrl-C to the interrupted line"
    assert not any(_alive(w) for w in workers), "worker processes outlived the interrupt"
    teardown = teardown_seconds()
    assert to_exit < 2.0 + teardown, f"exit {to_exit:.1f} s after Ctrl-C (a bare interpreter exits in {teardown:.1f} s)"

    finished = [line for _, line in run.lines if re.match(FINISHED_PAIR, line)]
    assert len(list((out / ".cache").glob("*-*.json"))) >= len(finished) >= 1
    assert not (out / "notebook.html").exists()
    entries = [json.loads(p.read_text()) for p in (out / ".cache").glob("*-*.json")]
    kept = {(e["name"], e["seed"]) for e in entries if e["quick"] and e["claims"] and "result" in e}
    for pair in finished:                                   # each finished pair's record is in the cache, whole
        name, seed = re.match(r"\[\d+/\d+\] (\w+) seed (\d+):", pair).groups()
        assert (name, int(seed)) in kept, (pair, sorted(kept))
    print(f"reproduce --jobs 2: interrupted line {to_line:.2f} s and exit {to_exit:.2f} s after Ctrl-C "
          f"(bare interpreter exit {teardown:.2f} s); {len(finished)} finished pair(s) cached")


def test_reproduce_ctrl_c_in_one_process_is_one_line_and_exit_130(tmp_path):
    run = Watched(["reproduce", "zero_init", "bn_inference", "--quick", "--seeds", "0-19", "--jobs", "1", "--out",
                   str(tmp_path / "out")])
    run.wait_for(FINISHED_PAIR)
    run.ctrl_c()
    to_line, to_exit = run.finish()
    run.check_one_line("reproduce")
    assert to_line < 2.0 and to_exit < 2.0 + teardown_seconds(), (to_line, to_exit)


SLOW_SPEC = """
import sys

import impediments as imp


def model():
    return imp.mlp(64, 10, width=64, depth=3, activation="relu")


def data():
    print("spec: data", file=sys.stderr, flush=True)
    return "digits"
"""


@pytest.mark.parametrize("command", [["doctor", "--steps", "200000"], ["fix"]], ids=["doctor", "fix"])
def test_doctor_and_fix_ctrl_c_while_training_is_one_line_and_exit_130(command, tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text(SLOW_SPEC)
    run = Watched([command[0], str(spec), *command[1:]])
    run.wait_for("^spec: data$")
    time.sleep(1.0)                                         # training is under way
    run.ctrl_c()
    to_line, to_exit = run.finish()
    run.check_one_line(command[0])
    assert to_line < 2.0 and to_exit < 2.0 + teardown_seconds(), (to_line, to_exit)


def test_interrupted_line_quotes_the_arguments_so_the_hint_can_be_pasted():
    line = interrupted_line("reproduce", ["reproduce", "--quick", "--out", "my out"])
    assert line == "impediments reproduce: interrupted; resume with: impediments reproduce --quick --out 'my out'"
    assert interrupted_line("fix", ["fix", "spec.py"]).endswith("run it again with: impediments fix spec.py")


def test_ctrl_c_inside_a_training_loop_that_swallows_it_still_stops_the_run_and_caches_nothing(tmp_path, monkeypatch):
    """``impediments.train.fit`` ends training cleanly on Ctrl-C and returns; inside ``reproduce`` that would
    let a truncated result be cached and the run go on. The runner's Ctrl-C must get through such a loop."""
    import types
    from dataclasses import dataclass

    from impediments import experiments
    from impediments.experiments import runner
    from impediments.experiments.framework import claim

    fake = types.ModuleType("impediments_test_interrupt.swallow")
    finished = []

    @dataclass(frozen=True)
    class Config:
        seed: int = 0

        @classmethod
        def quick(cls, seed=0):
            return cls(seed=seed)

    @dataclass
    class Result:
        steps: float

    def run(config):
        steps = 0
        try:                                                # the shape of fit's loop
            os.kill(os.getpid(), signal.SIGINT)
            for steps in range(1, 200):
                time.sleep(0.01)
        except KeyboardInterrupt:
            pass
        finished.append(steps)
        return Result(steps=float(steps))

    fake.SECTION, fake.Config, fake.Result, fake.run = "Fake", Config, Result, run
    fake.claims = lambda result: [claim("it ran", "test", {"steps": result.steps}, "steps >= 0")]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(experiments, "REGISTRY", {"swallow": fake.__name__})
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        runner.reproduce(["swallow"], quick=True, out=tmp_path, seeds=[0, 1], jobs=1)
    assert finished == [] and not list((tmp_path / ".cache").glob("swallow-*.json"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler          # restored
