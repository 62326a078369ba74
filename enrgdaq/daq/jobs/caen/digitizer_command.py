"""``restart_driver_command``: a program run before the digitizer is opened, never through a shell.

The original passed the string to ``subprocess.run(shell=True)``, so anything that could write a
job config (the REST API's custom jobs, a template parameter) could run any shell code. Here the
string is split into words (:func:`shlex.split`) and run as that program with those arguments:
no pipes, ``;``, ``&&``, redirections, ``$VARIABLES`` or globs. A script does those itself.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from enrgdaq.errors import DeviceError

TIMEOUT_SECONDS = 120.0
OUTPUT_TAIL_CHARS = 400


def run_restart_command(
    argv: list[str], stopping: Callable[[], bool], timeout_s: float = TIMEOUT_SECONDS
) -> bool:
    """Run ``argv`` to its end; True when it exited 0, False when a stop was asked meanwhile (it
    is then killed). Raises DeviceError when it cannot start, fails, or outlasts ``timeout_s``."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        raise DeviceError(f"restart_driver_command: cannot run '{argv[0]}': {exc.strerror or exc}") from exc
    deadline = time.monotonic() + timeout_s
    output = ""
    while True:
        try:
            output, _ = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            late = time.monotonic() > deadline
            if not (late or stopping()):
                continue
            proc.kill()
            proc.communicate()
            if late:
                raise DeviceError(
                    f"restart_driver_command '{argv[0]}' did not finish within {timeout_s:g} s (killed)"
                ) from None
            return False
    if proc.returncode != 0:
        tail = output.strip()[-OUTPUT_TAIL_CHARS:]
        raise DeviceError(
            f"restart_driver_command '{argv[0]}' exited with status {proc.returncode}"
            + (f": {tail}" if tail else "")
        )
    return True
