"""What a receiving bridge has taken in, per stream, kept where a kill -9 cannot take it.

A stream is what a sender stamps on its topic frames (:mod:`enrgdaq.message.sequence`): wire
topic and sender id; its numbers only grow. A number not above the last one taken is a
duplicate (the peer sent it again because it had no acknowledgement yet: :mod:`.acks`).

The table lives in a memory-mapped file in the node's run directory, so a bridge's next run
knows what the killed one took. A payload's hand-off is a commit into the bridge's own ring;
to be sure that a kill between the commit and the table's update neither loses nor repeats a
payload, the entry is written *before* the commit with the ring sequence number that will
commit it, and cleared after (:meth:`SeenLog.begin`, :meth:`SeenLog.settle`). A run that finds
an entry still marked looks at the ring: committed, the number stands; not, the entry goes
back to the number before (:meth:`SeenLog.recover`), and the peer's next send is taken.

Without a file (no data plane: nothing is committed anywhere) the table is in memory only.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import struct
from collections.abc import Callable

logger = logging.getLogger(__name__)

ENTRY = struct.Struct("<16sQQQ")
"""Stream key (blake2b of the stream), last number taken, the one before, ring seq + 1 of a
hand-off under way (0: none)."""
ENTRIES = 4096
"""Streams remembered (senders' rings x topics); more start the table afresh, logged."""
_MAX_CACHED = 65536


class SeenLog:
    """The per-stream high-water marks of one receiving bridge (see the module)."""

    def __init__(self, path: str | None, entries: int = ENTRIES) -> None:
        self.path = path
        self._entries = entries
        size = entries * ENTRY.size
        if path is None:
            self._mm = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, 0)  # another geometry (or new): start afresh
                    os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        self._slot: dict[bytes, int] = {}  # stream key -> entry index
        self._last: dict[bytes, int] = {}  # stream key -> last number taken
        self._keys: dict[bytes, bytes] = {}  # stream -> stream key (cache)
        self._changed: dict[tuple[bytes, str], int] = {}
        self._load()

    def _load(self) -> None:
        for index in range(self._entries):
            key, last, _, _ = ENTRY.unpack_from(self._mm, index * ENTRY.size)
            if key != bytes(16):
                self._slot[key] = index
                self._last[key] = last

    def recover(self, committed: Callable[[int], bool]) -> int:
        """Settle the hand-offs a killed run left under way; ``committed(ring_seq)``: whether the
        ring holds that commit. Returns how many went back (the peer sends them again)."""
        undone = 0
        for key, index in self._slot.items():
            _, last, before, pending = ENTRY.unpack_from(self._mm, index * ENTRY.size)
            if pending and not committed(pending - 1):
                self._write(index, key, before, before, 0)
                self._last[key] = before
                undone += 1
            elif pending:
                self._write(index, key, last, before, 0)
        return undone

    def last(self, stream: bytes) -> int | None:
        """The last number taken on ``stream`` (None: nothing known of it)."""
        return self._last.get(self._key(stream))

    def take(self, stream: bytes, seq: int) -> None:
        """``seq`` handed on with nothing to commit (inline, or no data plane)."""
        key = self._key(stream)
        self._write(self._index(key), key, seq, self._last.get(key, 0), 0)
        self._taken(key, stream, seq)

    def begin(self, stream: bytes, seq: int, ring_seq: int) -> None:
        """``seq`` is about to be committed as ``ring_seq`` of the bridge's ring."""
        key = self._key(stream)
        self._write(self._index(key), key, seq, self._last.get(key, 0), ring_seq + 1)

    def settle(self, stream: bytes, seq: int) -> None:
        """The commit :meth:`begin` announced is done (or the payload dropped by the ring's policy)."""
        key = self._key(stream)
        before = self._last.get(key, 0)
        self._write(self._slot[key], key, seq, before, 0)
        self._taken(key, stream, seq)

    def undo(self, stream: bytes) -> None:
        """The commit :meth:`begin` announced did not happen (the payload goes inline)."""
        key = self._key(stream)
        last = self._last.get(key, 0)
        self._write(self._slot[key], key, last, last, 0)

    def changed(self) -> dict[tuple[bytes, str], int]:
        """(sender, topic) -> last number taken, of the streams that moved since the last call."""
        out, self._changed = self._changed, {}
        return out

    def requeue(self, taken: dict[tuple[bytes, str], int]) -> None:
        """:meth:`changed` that could not be published: published with the next ones."""
        self._changed = {**taken, **self._changed}

    def close(self) -> None:
        if not self._mm.closed:
            self._mm.close()

    def _taken(self, key: bytes, stream: bytes, seq: int) -> None:
        self._last[key] = seq
        cut = len(stream) - 9  # topic, terminator, 8-byte sender id
        self._changed[(stream[cut + 1 :], stream[:cut].decode(errors="replace"))] = seq

    def _key(self, stream: bytes) -> bytes:
        key = self._keys.get(stream)
        if key is None:
            if len(self._keys) >= _MAX_CACHED:
                self._keys.clear()
            key = self._keys[stream] = hashlib.blake2b(stream, digest_size=16).digest()
        return key

    def _index(self, key: bytes) -> int:
        index = self._slot.get(key)
        if index is None:
            if len(self._slot) >= self._entries:
                logger.warning(
                    "%d streams seen by this bridge: the table starts afresh (a payload sent "
                    "again just now may be taken twice)",
                    len(self._slot),
                )
                self._mm[:] = bytes(len(self._mm))
                self._slot.clear()
                self._last.clear()
            index = self._slot[key] = len(self._slot)
        return index

    def _write(self, index: int, key: bytes, last: int, before: int, pending: int) -> None:
        ENTRY.pack_into(self._mm, index * ENTRY.size, key, last, before, pending)
