"""A lossless single-producer, multi-consumer ring in a shared file.

The producer owns the ring of its job; every consumer has an entry (a
cursor) in the ring's own header, so the state that coordinates processes
lives in the mapping and works between unrelated processes. A slot is
reused only when every active consumer's cursor has passed it: a slow or
restarting consumer makes the producer wait (backpressure), it never loses
data. A consumer that a person stopped detaches; one that is gone longer
than a limit is evicted, and what it misses from then on is counted.

Layout and the commit protocol: :mod:`enrgdaq.data.layout`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from enrgdaq.data import layout as L
from enrgdaq.errors import ConfigError, DAQError

_FENCE = threading.Lock()


def fence() -> None:
    """A full memory barrier (a locked instruction) between a store and a later load."""
    with _FENCE:
        pass


class RingFullError(DAQError):
    """Raised when a producer may not wait any longer for a slot (``drop`` policy or a timeout)."""


def name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") >> 1


def check_geometry(size_bytes: int, slot_bytes: int, directory: str) -> int:
    """Slot count for a ring of ``size_bytes`` in ``directory``; a clear error when it cannot be."""
    if slot_bytes <= 0 or size_bytes <= 0:
        raise ConfigError("ring_buffer_size_mb and ring_buffer_slot_size_kb must be positive")
    if slot_bytes > size_bytes:
        raise ConfigError(
            f"ring slot ({slot_bytes // 1024} KiB) is larger than the ring ({size_bytes // 2**20} MiB): "
            "lower ring_buffer_slot_size_kb or raise ring_buffer_size_mb",
            field="ring_buffer_slot_size_kb",
        )
    slot_count = size_bytes // slot_bytes
    needed = L.file_size(slot_count, slot_bytes)
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    if needed > free:
        raise ConfigError(
            f"a ring of {needed / 2**20:.0f} MiB does not fit in {directory} ({free / 2**20:.0f} MiB free): "
            "lower ring_buffer_size_mb or give the ring directory (a tmpfs) more room",
            field="ring_buffer_size_mb",
        )
    return slot_count


class Ring:
    """One ring file, mapped. Use :meth:`create` (the producer) or :meth:`attach` (a consumer)."""

    def __init__(self, path: str, fd: int, mm: mmap.mmap) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self._fd = fd
        self.mm = mm
        self.header = np.frombuffer(mm, dtype="<u8", count=L.HEADER_WORDS, offset=0)
        if int(self.header[L.MAGIC_W]) != L.MAGIC or int(self.header[L.VERSION_W]) != L.VERSION:
            self._unmap()
            raise DAQError(f"{path} is not an ENRGDAQ ring (or of another version)")
        self.slot_count = int(self.header[L.SLOT_COUNT_W])
        self.slot_size = int(self.header[L.SLOT_SIZE_W])
        self.consumers = np.frombuffer(
            mm, dtype="<u8", count=L.MAX_CONSUMERS * L.CONSUMER_WORDS, offset=L.CONSUMER_OFFSET
        ).reshape(L.MAX_CONSUMERS, L.CONSUMER_WORDS)
        self.slots = np.frombuffer(
            mm, dtype="<u8", count=self.slot_count * L.SLOT_WORDS, offset=L.SLOT_TABLE_OFFSET
        ).reshape(self.slot_count, L.SLOT_WORDS)
        self.data_offset = L.data_offset(self.slot_count)
        self.mm_view = memoryview(mm)
        self.data = self.mm_view[self.data_offset :]

    # -- opening ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str, slot_count: int, slot_size: int) -> Ring:
        """Open the producer's ring, creating it or continuing an existing one of the same geometry."""
        slot_size = -(-slot_size // 64) * 64
        size = L.file_size(slot_count, slot_size)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            existing = os.fstat(fd).st_size
            if existing != size or not cls._looks_valid(fd, slot_count, slot_size):
                os.ftruncate(fd, 0)
                os.ftruncate(fd, size)
                mm = mmap.mmap(fd, size)
                head = np.frombuffer(mm, dtype="<u8", count=L.HEADER_WORDS)
                head[L.SLOT_COUNT_W] = slot_count
                head[L.SLOT_SIZE_W] = slot_size
                head[L.CREATED_NS_W] = time.time_ns()
                table = np.frombuffer(
                    mm, dtype="<u8", count=slot_count * L.SLOT_WORDS, offset=L.SLOT_TABLE_OFFSET
                )
                table[:: L.SLOT_WORDS] = L.EMPTY_SEQ
                head[L.VERSION_W] = L.VERSION
                head[L.MAGIC_W] = L.MAGIC  # last: a half-made file is never taken for a ring
                del head, table
            else:
                mm = mmap.mmap(fd, size)
            ring = cls(path, fd, mm)
            ring.header[L.PRODUCER_PID_W] = os.getpid()
            ring.header[L.PRODUCER_EPOCH_W] = int(ring.header[L.PRODUCER_EPOCH_W]) + 1
            return ring
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _looks_valid(fd: int, slot_count: int, slot_size: int) -> bool:
        head = os.pread(fd, 32, 0)
        if len(head) < 32:
            return False
        words = np.frombuffer(head, dtype="<u8")
        return (
            int(words[L.MAGIC_W]) == L.MAGIC
            and int(words[L.VERSION_W]) == L.VERSION
            and int(words[L.SLOT_COUNT_W]) == slot_count
            and int(words[L.SLOT_SIZE_W]) == slot_size
        )

    @classmethod
    def attach(cls, path: str) -> Ring:
        """Map an existing ring (a consumer)."""
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < L.PAGE:
                raise DAQError(f"{path} is not an ENRGDAQ ring (too small)")
            return cls(path, fd, mmap.mmap(fd, size))
        except BaseException:
            os.close(fd)
            raise

    # -- the producer's side ----------------------------------------------------------
    @property
    def write_seq(self) -> int:
        return int(self.header[L.WRITE_SEQ_W])

    def active_consumers(self) -> list[int]:
        return [i for i in range(L.MAX_CONSUMERS) if int(self.consumers[i, L.C_STATE]) == L.ACTIVE]

    def min_cursor(self, active: list[int]) -> int | None:
        cursors = [int(self.consumers[i, L.C_CURSOR]) for i in active]
        return min(cursors) if cursors else None

    def slot_view(self, seq: int, nbytes: int) -> memoryview:
        start = (seq % self.slot_count) * self.slot_size
        return self.data[start : start + nbytes]

    def slot_offset(self, seq: int) -> int:
        """Offset of ``seq``'s slot from the start of the mapping (for zero-copy addresses)."""
        return self.data_offset + (seq % self.slot_count) * self.slot_size

    def commit(self, seq: int, nbytes: int) -> None:
        """Publish slot ``seq``: its size, then its sequence number, then ``write_seq``."""
        row = self.slots[seq % self.slot_count]
        row[L.S_NBYTES] = nbytes
        row[L.S_SEQ] = seq
        self.header[L.WRITE_SEQ_W] = seq + 1
        self.header[L.WRITTEN_BYTES_W] = int(self.header[L.WRITTEN_BYTES_W]) + nbytes

    def add_blocked(self, ns: int) -> None:
        self.header[L.BLOCKED_NS_W] = int(self.header[L.BLOCKED_NS_W]) + ns

    def add_dropped(self, n: int = 1) -> None:
        self.header[L.DROPPED_W] = int(self.header[L.DROPPED_W]) + n

    # -- the consumer table (rare changes, under a file lock) ----------------------------
    def _locked(self, fn: Callable[[], int]) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            return fn()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def find_consumer(self, name: str) -> int | None:
        wanted = name_hash(name)
        for i in range(L.MAX_CONSUMERS):
            if (
                int(self.consumers[i, L.C_STATE]) != L.FREE
                and int(self.consumers[i, L.C_NAME_HASH]) == wanted
            ):
                return i
        return None

    def register(self, name: str) -> int:
        """The consumer entry of ``name``, created with its cursor at ``write_seq`` if it has none.

        An evicted consumer comes back with the sequence numbers it missed counted.
        """

        def do() -> int:
            now = time.monotonic_ns()
            found = self.find_consumer(name)
            if found is not None:
                entry = self.consumers[found]
                if int(entry[L.C_STATE]) == L.EVICTED:
                    write = self.write_seq
                    entry[L.C_MISSED] = int(entry[L.C_MISSED]) + max(0, write - int(entry[L.C_CURSOR]))
                    entry[L.C_CURSOR] = write
                    entry[L.C_STATE] = L.ACTIVE
                entry[L.C_HEARTBEAT] = now
                return found
            for i in range(L.MAX_CONSUMERS):
                if int(self.consumers[i, L.C_STATE]) == L.FREE:
                    entry = self.consumers[i]
                    entry[L.C_CURSOR] = self.write_seq
                    entry[L.C_HEARTBEAT] = now
                    entry[L.C_WAKEUP] = 0
                    entry[L.C_MISSED] = 0
                    entry[L.C_NAME_HASH] = name_hash(name)
                    start = L.NAMES_OFFSET + i * L.NAME_BYTES
                    raw = name.encode()[: L.NAME_BYTES]
                    self.mm[start : start + L.NAME_BYTES] = raw.ljust(L.NAME_BYTES, b"\0")
                    entry[L.C_STATE] = L.ACTIVE
                    return i
            raise DAQError(f"ring {self.name} has no free consumer entry (at most {L.MAX_CONSUMERS})")

        return self._locked(do)

    def rejoin(self, name: str) -> int:
        """An evicted consumer that still runs becomes active again at the oldest payload still held.

        What was overwritten while it was evicted is added to its ``missed`` count.
        """

        def do() -> int:
            index = self.find_consumer(name)
            if index is None:
                raise DAQError(f"ring {self.name} has no entry for {name}")
            entry = self.consumers[index]
            if int(entry[L.C_STATE]) != L.ACTIVE:
                cursor = int(entry[L.C_CURSOR])
                oldest = max(cursor, self.write_seq - self.slot_count)
                entry[L.C_MISSED] = int(entry[L.C_MISSED]) + oldest - cursor
                entry[L.C_CURSOR] = oldest
                entry[L.C_HEARTBEAT] = time.monotonic_ns()
                entry[L.C_STATE] = L.ACTIVE
            return index

        return self._locked(do)

    def detach(self, name: str) -> None:
        """A consumer that a person stopped (or that was removed) stops holding the producer back."""

        def do() -> int:
            found = self.find_consumer(name)
            if found is not None:
                self.consumers[found, L.C_STATE] = L.FREE
            return 0

        self._locked(do)

    def evict_stale(self, older_than_ns: int) -> list[str]:
        """Evict consumers without a heartbeat for ``older_than_ns``; returns their names."""
        now = time.monotonic_ns()

        def do() -> int:
            for i in self.active_consumers():
                if now - int(self.consumers[i, L.C_HEARTBEAT]) > older_than_ns:
                    self.consumers[i, L.C_STATE] = L.EVICTED
                    evicted.append(self.consumer_name(i))
            return 0

        evicted: list[str] = []
        self._locked(do)
        return evicted

    def consumer_name(self, index: int) -> str:
        start = L.NAMES_OFFSET + index * L.NAME_BYTES
        return bytes(self.mm[start : start + L.NAME_BYTES]).rstrip(b"\0").decode(errors="replace")

    # -- the consumer's side ----------------------------------------------------------
    def cursor(self, index: int) -> int:
        return int(self.consumers[index, L.C_CURSOR])

    def set_cursor(self, index: int, seq: int) -> None:
        self.consumers[index, L.C_CURSOR] = seq

    def heartbeat(self, index: int) -> None:
        self.consumers[index, L.C_HEARTBEAT] = time.monotonic_ns()

    def state(self, index: int) -> int:
        return int(self.consumers[index, L.C_STATE])

    def committed(self, seq: int) -> int | None:
        """Size of slot ``seq`` if it holds ``seq`` (None: not written yet, or already reused)."""
        row = self.slots[seq % self.slot_count]
        if int(row[L.S_SEQ]) != seq:
            return None
        return int(row[L.S_NBYTES])

    def stats(self) -> dict[str, int]:
        return {
            "write_seq": self.write_seq,
            "slots": self.slot_count,
            "slot_size": self.slot_size,
            "blocked_ns": int(self.header[L.BLOCKED_NS_W]),
            "dropped": int(self.header[L.DROPPED_W]),
            "written_bytes": int(self.header[L.WRITTEN_BYTES_W]),
        }

    # -- closing -------------------------------------------------------------------------
    def _unmap(self) -> None:
        for attr in ("header", "consumers", "slots", "data", "mm_view"):
            if hasattr(self, attr):
                delattr(self, attr)
        with contextlib.suppress(BufferError):
            self.mm.close()

    def close(self) -> None:
        """Unmap (possible only once no zero-copy table of this ring is alive)."""
        self._unmap()
        with contextlib.suppress(OSError):
            os.close(self._fd)
