"""A receiving bridge's record of what it took: the node's shared table (:mod:`enrgdaq.message.seen`)
and the look into a killed bridge's ring that settles what it left half handed on."""

from __future__ import annotations

import os

from enrgdaq.data import layout as L
from enrgdaq.data.membership import name_hash
from enrgdaq.data.ring import Ring
from enrgdaq.data.settings import RING_PREFIX
from enrgdaq.errors import DAQError
from enrgdaq.message.seen import SeenLog

SEEN_FILE = "bridges-seen"
"""The node's table, in its run directory (one for all its bridges)."""


def open_seen_log(run_dir: str, ring_name: str) -> SeenLog:
    """The node's table, for a bridge that commits into the ring file ``ring_name``."""
    return SeenLog(os.path.join(run_dir, SEEN_FILE), name_hash(ring_name), RingCommits(run_dir))


class RingCommits:
    """``committed(ring hash, seq)`` over the ring files of one run directory."""

    def __init__(self, run_dir: str) -> None:
        self._run_dir = run_dir

    def __call__(self, ring: int, seq: int) -> bool:
        for name in os.listdir(self._run_dir):
            if name.startswith(RING_PREFIX) and name_hash(name) == ring:
                return self._holds(os.path.join(self._run_dir, name), seq)
        return False  # the ring is gone: what it held is gone with it; the peer sends it again

    @staticmethod
    def _holds(path: str, seq: int) -> bool:
        try:
            found = Ring.attach(path)
        except (OSError, DAQError):
            return False
        try:
            return found.word(L.WRITE_SEQ_W) > seq
        finally:
            found.close()
