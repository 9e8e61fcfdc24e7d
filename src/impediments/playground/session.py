"""The playground session: one background thread trains the runs and publishes their state.

All PyTorch work happens on the session's own thread; the web server's threads only validate a
request and enqueue a command (a bounded queue: a flood of clicks gets "busy", not memory).
Run A is the configured run; "Apply remedy" adds run B, a copy of A's configuration with the
finding's remedy, trained step for step alongside A so the two are compared side by side.
Updates go out every :data:`UPDATE_INTERVAL_S` while anything trains.
"""
from __future__ import annotations

import queue
import threading
import time

from impediments.playground.config import PlaygroundConfig
from impediments.playground.remedies import remedy_changes, remedy_options
from impediments.playground.run import Run
from impediments.playground.stream import Broadcaster

#: seconds between two published updates while training (>= 5 updates a second)
UPDATE_INTERVAL_S = 0.12
#: pending commands before the session answers "busy"
COMMAND_CAPACITY = 32
COMMANDS = ("train", "pause", "step", "reset", "remedy")


class Busy(RuntimeError):
    """Too many commands are waiting."""


class Session:
    """Runs A (and B), their training thread and the broadcaster their updates go to."""

    def __init__(self, broadcaster: Broadcaster | None = None) -> None:
        self.broadcaster = broadcaster or Broadcaster()
        self.runs: list[Run] = []
        self.training = False
        self.updates = 0
        self._publish_cost = 0.0            # seconds, running average (see _tick)
        self._commands: queue.Queue = queue.Queue(COMMAND_CAPACITY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="playground-training", daemon=True)

    # ------------------------------------------------------------------ called from the server
    def start(self) -> "Session":
        self._thread.start()
        return self

    def submit(self, command: str, *args) -> None:
        """Queue ``command`` (``train``, ``pause``, ``step``, ``reset``, ``remedy``) for the training thread.

        Raises:
            Busy: when :data:`COMMAND_CAPACITY` commands are already waiting.
        """
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; valid: {', '.join(COMMANDS)}")
        try:
            self._commands.put_nowait((command, args))
        except queue.Full:
            raise Busy("the playground is busy; try again in a moment") from None

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for run in self.runs:
            run.close()
        self.runs = []
        self.broadcaster.close()

    # ------------------------------------------------------------------ the training thread
    def _loop(self) -> None:
        import torch

        torch.set_num_threads(1)            # leave a core to the server and the browser
        Run(PlaygroundConfig(steps=100)).close()   # warm up: first imports, the default dataset
        self._publish()                            # the page learns that the session is ready
        while not self._stop.is_set():
            self._drain(block=not self._active())
            if self._active():
                self._tick()

    def _active(self) -> bool:
        return self.training and any(not r.finished for r in self.runs)

    def _drain(self, block: bool) -> None:
        try:
            command, args = self._commands.get(timeout=0.25) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        try:
            getattr(self, f"_cmd_{command}")(*args)
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of killing the thread
            self.broadcaster.publish("problem", {"message": f"{command}: {type(exc).__name__}: {exc}"})
        self._publish()

    def _tick(self) -> None:
        """Train every active run round-robin, then publish, so that a whole tick (training, evaluation,
        statistics, encoding) lasts about UPDATE_INTERVAL_S: the time left after the expected cost of
        publishing (a running average) goes to training, at least one step."""
        start = time.monotonic()
        deadline = start + max(0.0, UPDATE_INTERVAL_S - self._publish_cost)
        first = True
        while first or (time.monotonic() < deadline and self._commands.empty()):
            for run in self.runs:
                run.train_step(capture=first)
            first = False
        publish_start = time.monotonic()
        for run in self.runs:
            if run.mon is not None and (not run.curve.points or run.curve.points[-1][0] != run.step):
                run.add_curve_point()
        if not self._active():
            self.training = False
        self._publish()
        self._publish_cost = 0.7 * self._publish_cost + 0.3 * (time.monotonic() - publish_start)

    def _publish(self) -> None:
        self.updates += 1
        self.broadcaster.publish("state", {"seq": self.updates, "training": self.training, "time": time.time(),
                                           "runs": [self._view(r) for r in self.runs]})

    def _view(self, run: Run) -> dict:
        view = run.view(force=not self.training)
        if not run.finished:
            view["status"] = "training" if self.training else ("paused" if run.step else "ready")
        return view

    def _replace_runs(self, runs: list[Run]) -> None:
        for run in self.runs:
            run.close()
        self.runs = runs

    def _ensure(self, config: PlaygroundConfig) -> None:
        """Keep run A if it has this configuration and can go on; otherwise start afresh."""
        if not self.runs or self.runs[0].config != config or self.runs[0].finished:
            self._replace_runs([Run(config)])

    # ------------------------------------------------------------------ commands
    def _cmd_train(self, config: PlaygroundConfig) -> None:
        self._ensure(config)
        self.training = True

    def _cmd_pause(self) -> None:
        self.training = False

    def _cmd_step(self, config: PlaygroundConfig) -> None:
        self._ensure(config)
        self.training = False
        for run in self.runs:
            run.train_step(capture=True)
            if run.mon is not None:
                run.add_curve_point()

    def _cmd_reset(self, config: PlaygroundConfig) -> None:
        self.training = False
        self._replace_runs([Run(config)])

    def _cmd_remedy(self, code: str, remedy: str | None = None) -> None:
        if not self.runs:
            raise ValueError("train a run first; the remedy applies to its findings")
        a = self.runs[0]
        changes = remedy_changes(code, a.config, remedy)
        if changes is None:
            offered = ", ".join(o["remedy"] for o in remedy_options(code, a.config)) or "none"
            raise ValueError(f"the playground cannot apply remedy {remedy!r} for {code!r} in this configuration; "
                             f"valid: {offered}")
        note = f"remedy for {code}: " + ", ".join(f"{k}={v}" for k, v in changes.items())
        b = Run(a.config.replace(**changes), label="B", note=note)
        for old in self.runs[1:]:
            old.close()
        self.runs = [a, b]
        self.training = True
