"""Progress on stderr for commands that wait: silent for the first second, then a spinner (a
terminal) or dots (a log file), and how long it took. stdout stays for the result (``--json``)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

QUIET_SECONDS = 1.0
"""Nothing is shown for work done within this long."""
_SPINNER = "|/-\\"


def with_progress(what: str, work: Callable[[], T], quiet_seconds: float = QUIET_SECONDS) -> T:
    """Run ``work`` and return its result; after ``quiet_seconds`` show ``what`` with a spinner
    or dots on stderr until it returns (or raises)."""
    done = threading.Event()
    shown = threading.Event()
    stream = sys.stderr
    tty = stream.isatty()
    started = time.monotonic()

    def show() -> None:
        if done.wait(quiet_seconds):
            return
        shown.set()
        stream.write(f"{what} ")
        stream.flush()
        n = 0
        while not done.wait(0.1 if tty else 0.5):
            stream.write(f"\b{_SPINNER[n % 4]}" if tty and n else (_SPINNER[0] if tty else "."))
            stream.flush()
            n += 1

    thread = threading.Thread(target=show, name="progress", daemon=True)
    thread.start()
    try:
        return work()
    finally:
        done.set()
        thread.join()
        if shown.is_set():
            stream.write(("\b" if tty else "") + f" ({time.monotonic() - started:.1f} s)\n")
            stream.flush()
