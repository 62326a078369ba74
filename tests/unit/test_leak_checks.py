"""The leak checks can fail: they see a leaked process and a leaked /dev/shm entry."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from tests.harness.leaks import describe, kill_all, live_children, shm_entries


def test_a_leaked_child_process_is_seen() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        leaked = live_children()
        assert child.pid in [p.pid for p in leaked]
        assert "signal.pause()" in describe(next(p for p in leaked if p.pid == child.pid))
    finally:
        kill_all(live_children())
        child.wait()
    assert child.pid not in [p.pid for p in live_children()]


def test_a_leaked_shared_memory_file_is_seen() -> None:
    before = shm_entries()
    fd, path = tempfile.mkstemp(prefix="edq-leak-probe-", dir="/dev/shm")
    os.close(fd)
    try:
        assert os.path.basename(path) in shm_entries() - before
    finally:
        os.unlink(path)
    assert os.path.basename(path) not in shm_entries()
