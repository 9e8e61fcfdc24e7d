"""Ctrl-C in a command that trains: the one place that decides what SIGINT does.

A training loop may end cleanly on Ctrl-C (:func:`impediments.train.fit` catches KeyboardInterrupt and
returns its history). Inside a command that runs many trainings and judges them (``reproduce``,
``fix``), that would let a truncated run be judged, cached or verified, and the command go on. So the
command raises :class:`Interrupted`, which no training loop catches, and turns it back into a
KeyboardInterrupt once out of the trainings. Worker processes ignore SIGINT from birth; the parent,
which alone gets Ctrl-C, terminates them.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Interrupted(BaseException):
    """Ctrl-C during a command's trainings. Not a KeyboardInterrupt, so a loop that swallows those cannot
    swallow this."""


@contextmanager
def ctrl_c_stops_the_run():
    """Make Ctrl-C stop the trainings run in this process, re-raised as KeyboardInterrupt once out of them.

    Only on the main thread, and only while SIGINT has Python's default handler (a caller's own handler,
    or SIGINT ignored, is left alone).
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    except Interrupted:
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def sigint_ignored():
    """Ignore SIGINT for the duration (on the main thread only: signal handlers cannot be set elsewhere).

    Processes spawned meanwhile inherit the ignored disposition, and Python keeps an inherited SIG_IGN, so
    a Ctrl-C at the terminal (SIGINT to the whole process group) interrupts the parent alone: no worker
    prints a traceback or ends its training early, and the parent terminates them at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint() -> None:
    """A worker's initializer: the parent handles Ctrl-C and terminates its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def terminate(children: list) -> None:
    """SIGTERM each worker process and reap it."""
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
