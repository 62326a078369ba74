"""A consumer's hold on one ring: its cursor, and the guards that give slots back.

A slot is released when the last zero-copy buffer of its message is gone (a
:class:`SlotGuard` per message, or one :class:`~enrgdaq.data.runs.RunGuard`
per run of slots): releases may come in any order; the cursor in the ring
moves over the ones that are contiguous. See :mod:`enrgdaq.data.reader`.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from enrgdaq.data.ring import Ring


class SlotGuard:
    """Kept alive by every zero-copy buffer of one message; its death releases the slot.

    ``__del__`` (CPython frees it the moment the last buffer goes) is much
    cheaper per message than ``weakref.finalize``.
    """

    __slots__ = ("committed_ns", "seq", "tracker")

    def __init__(self, tracker: RingTracker, seq: int, committed_ns: int = 0) -> None:
        self.tracker = tracker
        self.seq = seq
        self.committed_ns = committed_ns  # when the producer committed the slot (monotonic ns)

    def __del__(self) -> None:
        self.tracker.release(self.seq)


class _Disowned:
    """Stands in for the tracker of a guard whose slot was given back already."""

    def release(self, seq: int) -> None:
        pass


DISOWNED = _Disowned()


class RingTracker:
    def __init__(self, ring: Ring, index: int) -> None:
        self.ring = ring
        self.index = index
        self.read_pos = ring.cursor(index)
        self._next_release = self.read_pos
        self._released: set[int] = set()
        # Re-entrant: a guard's __del__ (which takes it) may run from a garbage collection
        # that starts while this thread holds it.
        self._lock = threading.RLock()
        self._mapping = pa.py_buffer(ring.mm)
        self.address = self._mapping.address
        self.outstanding = 0  # guards alive: zero-copy views into the mapping
        self._close_when_free = False
        # Just after rejoining, the producer may not count this consumer yet: copy what is read.
        self.copy_until = 0.0
        self.retired = False  # its file was replaced or removed: read to the end, then unmapped

    def restart_at(self, index: int) -> int:
        """After an eviction: the entry's cursor moved to the oldest slot still intact.

        What was read already is not read again; releases of overwritten slots are ignored.
        Returns how many payloads that were never read were overwritten.
        """
        with self._lock:
            self.index = index
            oldest = self.ring.cursor(index)
            lost = max(0, oldest - self.read_pos)
            self.read_pos = max(self.read_pos, oldest)
            self._next_release = oldest
            self._released = {seq for seq in self._released if seq >= oldest}
            return lost

    def release(self, seq: int) -> None:
        with self._lock:
            self.outstanding -= 1
            if self.outstanding <= 0 and self._close_when_free:
                self._close_now()
                return
            if seq == self._next_release and not self._released:  # in order: the usual case
                self._next_release = seq + 1
                self.ring.set_cursor(self.index, seq + 1)
                return
            if seq < self._next_release:
                return
            self._released.add(seq)
            advanced = False
            while self._next_release in self._released:
                self._released.discard(self._next_release)
                self._next_release += 1
                advanced = True
            if advanced:
                self.ring.set_cursor(self.index, self._next_release)

    def release_range(self, first: int, last: int, count: int) -> None:
        """A run's guard died: ``count`` slots, ``first`` to ``last``, given back at once (``last``
        below 0: none given back, see ``keep_in_ring``)."""
        with self._lock:
            self.outstanding -= count
            if self.outstanding <= 0 and self._close_when_free:
                self._close_now()
                return
            if last < self._next_release:
                return
            if first == self._next_release and not self._released:  # in order: the usual case
                self._next_release = last + 1
                self.ring.set_cursor(self.index, last + 1)
                return
            self._released.update(range(max(first, self._next_release), last + 1))
            advanced = False
            while self._next_release in self._released:
                self._released.discard(self._next_release)
                self._next_release += 1
                advanced = True
            if advanced:
                self.ring.set_cursor(self.index, self._next_release)

    def close(self) -> None:
        """Unmap, or, while a zero-copy table still points into the mapping, once the last one goes."""
        with self._lock:
            if self.outstanding > 0:
                self._close_when_free = True
                return
            self._close_now()

    def _close_now(self) -> None:
        self._close_when_free = False
        if hasattr(self, "_mapping"):
            del self._mapping
            self.ring.close()
