"""What a node's receiving bridges have taken in, per stream: one table for every bridge of the
node, kept where a kill -9 cannot take it.

A stream is what a sender stamps on its topic frames (:mod:`enrgdaq.message.sequence`): wire
topic and sender id; its numbers only grow. A number not above the last one taken is a
duplicate: the peer sent it again because it had no acknowledgement yet (:mod:`.acks`), or it
came over a second link between the same two nodes. The table is shared by all bridges of
the node, so that two links never deliver a payload twice.

It lives in a memory-mapped file in the node's run directory (an open-addressed hash table),
locked with ``flock`` while a bridge works on a batch (:meth:`SeenLog.locked`), so that a
bridge's next run, and the other bridges, know what a killed one took. A payload's hand-off is
a commit into the bridge's own ring; the entry is written *before* the commit, naming the ring
and the sequence number that will commit it, and cleared after (:meth:`SeenLog.begin`,
:meth:`SeenLog.settle`). An entry found still marked by whoever holds the lock was left by a
killed run: its ring says whether the commit happened (``committed``); if not, the entry goes
back to the number before, and the peer's next send is taken.

Without a file (no data plane: nothing is committed anywhere) the table is in this process only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import struct
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

ENTRY = struct.Struct("<16sQQQQ")
"""Stream key (blake2b of the stream), last number taken, the one before, ring seq + 1 of a
hand-off under way (0: none), hash of the ring it goes into."""
HEADER = struct.Struct("<QQ")  # magic, generation (grows when the table starts afresh)
MAGIC = 0x5345454E_54414231  # "SEENTAB1"
ENTRIES = 8192
"""Streams remembered (senders' rings x topics); more start the table afresh, logged."""
_EMPTY = bytes(16)
_MAX_CACHED = 65536

Committed = Callable[[int, int], bool]
"""``committed(ring hash, ring seq)``: whether that ring holds that commit."""


class SeenLog:
    """The per-stream high-water marks of a node's receiving bridges (see the module)."""

    def __init__(self, path: str | None, ring: int = 0, committed: Committed | None = None) -> None:
        self.path = path
        self._ring = ring  # hash of the ring this bridge commits into
        self._committed = committed or (lambda _ring, _seq: False)
        size = HEADER.size + ENTRIES * ENTRY.size
        self._fd = -1
        if path is None:
            self._mm = mmap.mmap(-1, size)
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            with self._flock():
                if os.fstat(self._fd).st_size != size:
                    os.ftruncate(self._fd, 0)  # another geometry (or new): start afresh
                    os.ftruncate(self._fd, size)
                self._mm = mmap.mmap(self._fd, size)
                if HEADER.unpack_from(self._mm, 0)[0] != MAGIC:
                    HEADER.pack_into(self._mm, 0, MAGIC, 1)
        self._index: dict[bytes, int] = {}  # stream key -> entry (valid for one generation)
        self._gen = -1
        self._keys: dict[bytes, bytes] = {}  # stream -> stream key (cache)
        self._changed: dict[tuple[bytes, str], int] = {}
        self.undone = 0  # hand-offs of killed runs found not committed (sent again by the peer)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the node's table for a batch of payloads (other bridges wait meanwhile)."""
        with self._flock():
            gen = HEADER.unpack_from(self._mm, 0)[1]
            if gen != self._gen:
                self._index.clear()
                self._gen = gen
            yield

    def last(self, stream: bytes) -> int | None:
        """The last number taken on ``stream`` (None: nothing known of it). Under :meth:`locked`."""
        key = self._key(stream)
        index = self._find(key)
        found, last, before, pending, ring = ENTRY.unpack_from(self._mm, self._at(index))
        if found != key:
            return None
        if pending:  # left by a killed run (a live one holds the lock while it hands on)
            if not self._committed(ring, pending - 1):
                last = before
                self.undone += 1
            ENTRY.pack_into(self._mm, self._at(index), key, last, last, 0, 0)
        return last

    def take(self, stream: bytes, seq: int) -> None:
        """``seq`` handed on with nothing to commit (inline, or no data plane)."""
        key = self._key(stream)
        self._write(key, seq, 0)
        self._taken(stream, seq)

    def begin(self, stream: bytes, seq: int, ring_seq: int) -> None:
        """``seq`` is about to be committed as ``ring_seq`` of this bridge's ring."""
        self._write(self._key(stream), seq, ring_seq + 1)

    def settle(self, stream: bytes, seq: int) -> None:
        """The commit :meth:`begin` announced is done (or the payload dropped by the ring's policy)."""
        key = self._key(stream)
        index = self._find(key)
        _, _, before, _, _ = ENTRY.unpack_from(self._mm, self._at(index))
        ENTRY.pack_into(self._mm, self._at(index), key, seq, before, 0, 0)
        self._taken(stream, seq)

    def undo(self, stream: bytes) -> None:
        """The commit :meth:`begin` announced did not happen (the payload goes inline)."""
        key = self._key(stream)
        index = self._find(key)
        _, _, before, _, _ = ENTRY.unpack_from(self._mm, self._at(index))
        ENTRY.pack_into(self._mm, self._at(index), key, before, before, 0, 0)

    def changed(self) -> dict[tuple[bytes, str], int]:
        """(sender, topic) -> last number this bridge took, of the streams that moved since the
        last call (what it acknowledges)."""
        out, self._changed = self._changed, {}
        return out

    @property
    def has_changed(self) -> bool:
        """Whether something was taken since the last :meth:`changed`."""
        return bool(self._changed)

    def requeue(self, taken: dict[tuple[bytes, str], int]) -> None:
        """:meth:`changed` that could not be published: published with the next ones."""
        self._changed = {**taken, **self._changed}

    def close(self) -> None:
        if not self._mm.closed:
            self._mm.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the table ---------------------------------------------------------------------------
    def _write(self, key: bytes, seq: int, pending: int) -> None:
        index = self._find(key)
        found, last, _, _, _ = ENTRY.unpack_from(self._mm, self._at(index))
        before = last if found == key else 0
        ENTRY.pack_into(self._mm, self._at(index), key, seq, before, pending, self._ring if pending else 0)

    def _find(self, key: bytes) -> int:
        """The entry of ``key``, or the empty one where it goes (the table starts afresh when full)."""
        index = self._index.get(key)
        if index is not None:
            return index
        start = int.from_bytes(key[:8], "little") % ENTRIES
        for probe in range(ENTRIES):
            index = (start + probe) % ENTRIES
            found = self._mm[self._at(index) : self._at(index) + 16]
            if found == key:
                self._index[key] = index
                return index
            if found == _EMPTY:
                return index
        self._start_afresh()
        return start

    def _start_afresh(self) -> None:
        logger.warning(
            "%d streams seen by this node's bridges: the table starts afresh (a payload sent again "
            "just now may be taken twice)",
            ENTRIES,
        )
        gen = HEADER.unpack_from(self._mm, 0)[1]
        self._mm[HEADER.size :] = bytes(len(self._mm) - HEADER.size)
        HEADER.pack_into(self._mm, 0, MAGIC, gen + 1)
        self._index.clear()
        self._gen = gen + 1

    @staticmethod
    def _at(index: int) -> int:
        return HEADER.size + index * ENTRY.size

    def _taken(self, stream: bytes, seq: int) -> None:
        cut = len(stream) - 9  # topic, terminator, 8-byte sender id
        self._changed[(stream[cut + 1 :], stream[:cut].decode(errors="replace"))] = seq

    def _key(self, stream: bytes) -> bytes:
        key = self._keys.get(stream)
        if key is None:
            if len(self._keys) >= _MAX_CACHED:
                self._keys.clear()
            key = self._keys[stream] = hashlib.blake2b(stream, digest_size=16).digest()
        return key

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        if self._fd < 0:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
