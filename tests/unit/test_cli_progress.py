"""What a person sees on stderr while a command waits: nothing for a quick one, then progress and
how long it took; stdout (``--json``) never gets any of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from enrgdaq.cli.progress import with_progress

PROGRAM = """
import sys, time
from enrgdaq.cli.progress import with_progress
print(with_progress("restarting producer", lambda: time.sleep(float(sys.argv[1])) or "done"))
"""


def run(seconds: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, str(seconds)], capture_output=True, text=True, timeout=30
    )


def test_a_wait_of_more_than_a_second_shows_progress_on_stderr_only() -> None:
    done = run(2.2)
    assert done.returncode == 0 and done.stdout == "done\n"
    assert done.stderr.startswith("restarting producer ."), done.stderr
    assert done.stderr.count(".") >= 2 and done.stderr.rstrip().endswith("s)"), done.stderr


def test_a_quick_command_shows_nothing() -> None:
    done = run(0.1)
    assert done.stdout == "done\n" and done.stderr == ""


def test_an_error_still_ends_the_progress_line() -> None:
    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        with_progress("stopping", fails, quiet_seconds=0.0)
