"""Waiting on conditions with a timeout (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)
        last = condition()
    return last


def stays(condition: Callable[[], object], seconds: float, what: str, interval: float = 0.05) -> None:
    """Watch ``condition`` for ``seconds`` and fail the moment it is false (an observation window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            raise AssertionError(f"expected {what} for {seconds:.1f} s, it changed")
        time.sleep(interval)
