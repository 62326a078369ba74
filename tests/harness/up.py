"""``enrgdaq up`` and the other commands as a user runs them: a subprocess in a work directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tests.harness.celery_proc import REPO


def user_env() -> dict[str, str]:
    """A user's shell: nothing of ENRGDAQ's, no PYTHONPATH that would find test modules for us."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ENRGDAQ_") and k != "PYTHONPATH"}


def start_up(
    workdir: str, *options: str, env: dict[str, str] | None = None, output: str = "up.out"
) -> subprocess.Popen[bytes]:
    """``enrgdaq up configs/`` in ``workdir``; output in ``output``.

    The examples are copied in unless ``workdir`` has its ``configs/`` already (a test
    that wrote its own, or a second ``up`` in the same directory).
    """
    if not os.path.isdir(os.path.join(workdir, "configs")):
        shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    with open(os.path.join(workdir, output), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "enrgdaq.cli.main", "up", "configs/", *options],
            cwd=workdir,
            env=user_env() if env is None else env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_up(up: subprocess.Popen[bytes], timeout: float = 30) -> int | None:
    """Ctrl-C, as a user stops it; killed if it does not stop (None: the test then fails on it)."""
    if up.poll() is not None:
        return up.returncode
    up.send_signal(signal.SIGINT)
    try:
        return up.wait(timeout)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait(10)
        return None


def enrgdaq(workdir: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Another command from another terminal in the same directory."""
    return subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", *args],
        cwd=workdir,
        env=user_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
    )
