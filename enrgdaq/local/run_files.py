"""The files ``enrgdaq up`` makes in its run directory, removed when it stops.

The run directory may be the user's (``run_dir`` in supervisor.toml,
``ENRGDAQ_RUN_DIR``) and hold files of theirs, so shutdown removes only what
the stack made there: the producers' rings (and a ring being replaced), the
ZMQ ipc sockets, the stores' write journals. The directory itself goes with the lock (see
:mod:`enrgdaq.local.lock`), and only when this ``up`` created it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os

from enrgdaq.daq.store.journal import JOURNAL_PREFIX
from enrgdaq.data.settings import RING_PREFIX

logger = logging.getLogger(__name__)

OWN_FILES = (f"{RING_PREFIX}*", f".{RING_PREFIX}*", "*.sock", f"{JOURNAL_PREFIX}*")


def remove_own_files(run_dir: str) -> list[str]:
    """Remove the rings and sockets in ``run_dir``; returns the names removed."""
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_FILES):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(os.path.join(run_dir, name))
                removed.append(name)
    logger.debug("removed from %s: %s", run_dir, removed)
    return removed
