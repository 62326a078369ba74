"""Checks of a config that need the machine, not just the file: does the ring fit its directory?

Plain numeric bounds (a rate, a size, an interval) live on the struct fields as
``msgspec.Meta`` and are checked while decoding; this module holds what
``enrgdaq check`` can only answer by looking at the ring directory.
"""

from __future__ import annotations

import contextlib
import os

from enrgdaq import settings
from enrgdaq.config.locate import find_line
from enrgdaq.data.layout import file_size
from enrgdaq.data.settings import RING_PREFIX
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorConfig


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _free_bytes(directory: str) -> int:
    """Free bytes where rings will go, counting the rings already there as free (a running
    system's own rings are replaced, not added to)."""
    stat = os.statvfs(_existing_ancestor(directory))
    free = stat.f_bavail * stat.f_frsize
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(RING_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    free += os.stat(os.path.join(directory, name)).st_blocks * 512
    return free


def check_ring_fits(config: SupervisorConfig, file: str) -> ConfigError | None:
    """An error naming ``ring_buffer_size_mb`` when one producer's ring cannot fit the ring
    directory; None when it fits (or rings are off)."""
    if not config.ring_enabled:
        return None
    directory = settings.run_dir(config)
    slot_bytes = config.ring_buffer_slot_size_kb * 1024
    needed = file_size(config.ring_buffer_size_mb * 2**20 // slot_bytes, slot_bytes)
    free = _free_bytes(directory)
    if needed <= free:
        return None
    text = _read(file)
    return ConfigError(
        f"a ring of {needed / 2**20:.0f} MiB per producing job does not fit in {directory} "
        f"({free / 2**20:.0f} MiB free): lower ring_buffer_size_mb or give the ring directory "
        "(a tmpfs) more room",
        file=file,
        line=find_line(text, ["ring_buffer_size_mb"]) if text else None,
        field="ring_buffer_size_mb",
    )


def _read(file: str) -> str:
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ""
