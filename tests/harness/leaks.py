"""What a test may not leave behind: processes, socket files, shared-memory files."""

from __future__ import annotations

import contextlib
import os

import psutil

SHM_DIR = "/dev/shm"


def live_children() -> list[psutil.Process]:
    """Descendants of this process that are still running (zombies are reaped by their owners)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {proc.pid}"


def files_under(paths: list[str]) -> list[str]:
    """Every file (sockets, rings) still present below ``paths``."""
    found = []
    for top in paths:
        if os.path.isfile(top) or os.path.islink(top):
            found.append(top)
            continue
        for root, _dirs, files in os.walk(top):
            found.extend(os.path.join(root, f) for f in files)
    return found


def shm_entries() -> set[str]:
    try:
        return {name for name in os.listdir(SHM_DIR) if "enrgdaq" in name or name.startswith("edq")}
    except FileNotFoundError:
        return set()


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)
