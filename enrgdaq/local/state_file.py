"""``.enrgdaq/up.json``: how ``enrgdaq status`` finds the system ``enrgdaq up`` started here."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

STATE_DIR = ".enrgdaq"
STATE_FILE = "up.json"


def state_path(base: str = ".") -> str:
    return os.path.join(base, STATE_DIR, STATE_FILE)


def write_state(state: dict[str, Any], base: str = ".") -> str:
    path = state_path(base)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    return path


def read_state(base: str = ".") -> dict[str, Any] | None:
    """The state of a running ``enrgdaq up`` in ``base`` or a parent directory, if any."""
    here = os.path.abspath(base)
    while True:
        path = state_path(here)
        if os.path.exists(path):
            with open(path) as f:
                state: dict[str, Any] = json.load(f)
            pid = state.get("pid")
            if isinstance(pid, int) and _alive(pid):
                return state
            return None
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def remove_state(base: str = ".") -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path(base))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
