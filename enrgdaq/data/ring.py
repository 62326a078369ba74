"""A lossless single-producer, multi-consumer ring in a shared file.

The producer owns the ring of its job; every consumer has an entry (a
cursor) in the ring's own header, so the state that coordinates processes
lives in the mapping and works between unrelated processes. A slot is
reused only when every active consumer's cursor has passed it: a slow or
restarting consumer makes the producer wait (backpressure), it never loses
data. A consumer that a person stopped detaches; one that is gone longer
than a limit is evicted, and what it misses from then on is counted
(:mod:`enrgdaq.data.membership`).

Layout and the commit protocol: :mod:`enrgdaq.data.layout`. The words are
read and written through a ``memoryview`` cast to u64 (aligned 8-byte loads
and stores; several times cheaper per access than numpy scalars, which
matters at tens of thousands of messages a second).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import stat
import struct
import threading
import time

from enrgdaq.data import layout as L
from enrgdaq.data import membership
from enrgdaq.errors import ConfigError, DAQError

FENCE = threading.Lock()
"""Taken and let go by :func:`fence` (the writer takes it inline, once per message)."""
_HEAD = struct.Struct("<4Q")


def fence() -> None:
    """A full memory barrier (a locked instruction) between a store and a later load."""
    with FENCE:
        pass


class RingFullError(DAQError):
    """Raised when a producer may not wait any longer for a slot (``drop`` policy or a timeout)."""


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
        self._inode = os.fstat(fd).st_ino
        self.mm = mm
        self.mm_view = memoryview(mm)
        self.words = self.mm_view[: L.data_offset(1)].cast("Q")
        if self.words[L.MAGIC_W] != L.MAGIC or self.words[L.VERSION_W] != L.VERSION:
            self._unmap()
            raise DAQError(f"{path} is not an ENRGDAQ ring (or of another version)")
        self.slot_count = self.words[L.SLOT_COUNT_W]
        self.slot_size = self.words[L.SLOT_SIZE_W]
        self.data_offset = L.data_offset(self.slot_count)
        self.words = self.mm_view[: self.data_offset].cast("Q")
        self.data = self.mm_view[self.data_offset :]

    # -- opening ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str, slot_count: int, slot_size: int) -> Ring:
        """Open the producer's ring, creating it or continuing an existing one of the same geometry."""
        slot_size = -(-slot_size // 64) * 64
        size = L.file_size(slot_count, slot_size)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            existing = os.fstat(fd).st_size
            if existing != size or not cls._looks_valid(fd, slot_count, slot_size):
                fd = cls._replace(path, fd, slot_count, slot_size)
            ring = cls(path, fd, mmap.mmap(fd, size))
            ring.words[L.PRODUCER_PID_W] = os.getpid()
            ring.words[L.PRODUCER_EPOCH_W] += 1
            return ring
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(fd, fcntl.LOCK_UN)

    @classmethod
    def _replace(cls, path: str, old_fd: int, slot_count: int, slot_size: int) -> int:
        """A new, formatted file renamed over ``path``; returns its fd, locked.

        Never resized in place: a store that still maps the old file (another geometry, a
        restarted producer) would die of SIGBUS; it keeps reading the old file instead and
        moves to the new one (see ``RingReader.scan``).
        """
        directory, name = os.path.split(path)
        temporary = os.path.join(directory, f".{name}.new-{os.getpid()}")  # not a ring- name
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, L.file_size(slot_count, slot_size))
            cls._format(fd, slot_count, slot_size)
            os.rename(temporary, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(old_fd, fcntl.LOCK_UN)
        os.close(old_fd)
        return fd

    @property
    def inode(self) -> int:
        """The mapped file's inode: a ring file replaced under the same name has another one."""
        return self._inode

    @staticmethod
    def _format(fd: int, slot_count: int, slot_size: int) -> None:
        table = struct.pack(f"<{slot_count * L.SLOT_WORDS}Q", *([L.EMPTY_SEQ, 0, 0, 0] * slot_count))
        os.pwrite(fd, table, L.SLOT_TABLE_OFFSET)
        os.pwrite(fd, struct.pack("<Q", slot_count), L.SLOT_COUNT_W * 8)
        os.pwrite(fd, struct.pack("<Q", slot_size), L.SLOT_SIZE_W * 8)
        os.pwrite(fd, struct.pack("<Q", time.time_ns()), L.CREATED_NS_W * 8)
        os.pwrite(fd, struct.pack("<Q", L.VERSION), L.VERSION_W * 8)
        os.pwrite(fd, struct.pack("<Q", L.MAGIC), L.MAGIC_W * 8)  # last: a half-made file is no ring

    @staticmethod
    def _looks_valid(fd: int, slot_count: int, slot_size: int) -> bool:
        head = os.pread(fd, _HEAD.size, 0)
        if len(head) < _HEAD.size:
            return False
        return _HEAD.unpack(head) == (L.MAGIC, L.VERSION, slot_count, slot_size)

    @classmethod
    def attach(cls, path: str) -> Ring:
        """Map an existing ring (a consumer). Never through a symlink, never anything but a file."""
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DAQError(f"{path} is not an ENRGDAQ ring (not a regular file)")
            size = info.st_size
            if size < L.PAGE:
                raise DAQError(f"{path} is not an ENRGDAQ ring (too small)")
            return cls(path, fd, mmap.mmap(fd, size))
        except BaseException:
            os.close(fd)
            raise

    # -- header words ---------------------------------------------------------------
    def word(self, index: int) -> int:
        return self.words[index]

    @property
    def write_seq(self) -> int:
        return self.words[L.WRITE_SEQ_W]

    @property
    def consumers_gen(self) -> int:
        """Changes whenever an entry of the consumer table does (register, detach, evict, rejoin)."""
        return self.words[L.CONSUMERS_GEN_W]

    def add_blocked(self, ns: int) -> None:
        self.words[L.BLOCKED_NS_W] += ns

    def add_dropped(self, n: int = 1) -> None:
        self.words[L.DROPPED_W] += n

    # -- slots ----------------------------------------------------------------------
    def slot_offset(self, seq: int) -> int:
        """Offset of ``seq``'s slot from the start of the mapping (for zero-copy addresses)."""
        return self.data_offset + (seq % self.slot_count) * self.slot_size

    def slot_seq(self, slot: int) -> int:
        """The sequence number slot ``slot`` holds (``EMPTY_SEQ`` before its first commit)."""
        return self.words[L.SLOT_TABLE_WORD + slot * L.SLOT_WORDS + L.S_SEQ]

    def begin(self, seq: int) -> None:
        """Mark ``seq``'s slot as being rewritten before its data changes: a reader that finds the
        slot's sequence number unchanged after reading knows that nothing overwrote it meanwhile."""
        self.words[L.SLOT_TABLE_WORD + (seq % self.slot_count) * L.SLOT_WORDS + L.S_SEQ] = L.EMPTY_SEQ

    def commit(self, seq: int, nbytes: int) -> None:
        """Publish slot ``seq``: its size, then its sequence number, then ``write_seq``."""
        words = self.words
        row = L.SLOT_TABLE_WORD + (seq % self.slot_count) * L.SLOT_WORDS
        words[row + L.S_NBYTES] = nbytes
        words[row + L.S_COMMIT_NS] = time.monotonic_ns()
        words[row + L.S_SEQ] = seq
        words[L.WRITE_SEQ_W] = seq + 1
        words[L.WRITTEN_BYTES_W] += nbytes

    def committed(self, seq: int) -> int | None:
        """Size of slot ``seq`` if it holds ``seq`` (None: not written yet, or already reused)."""
        row = L.SLOT_TABLE_WORD + (seq % self.slot_count) * L.SLOT_WORDS
        if self.words[row + L.S_SEQ] != seq:
            return None
        return self.words[row + L.S_NBYTES]

    def commit_ns(self, seq: int) -> int:
        """When slot ``seq`` was committed (``time.monotonic_ns``); valid while ``committed(seq)`` is."""
        return self.words[L.SLOT_TABLE_WORD + (seq % self.slot_count) * L.SLOT_WORDS + L.S_COMMIT_NS]

    # -- consumer entries -----------------------------------------------------------
    def entry(self, index: int, field: int) -> int:
        return self.words[L.CONSUMER_WORD + index * L.CONSUMER_WORDS + field]

    def set_entry(self, index: int, field: int, value: int) -> None:
        self.words[L.CONSUMER_WORD + index * L.CONSUMER_WORDS + field] = value

    def state(self, index: int) -> int:
        return self.entry(index, L.C_STATE)

    def cursor(self, index: int) -> int:
        return self.entry(index, L.C_CURSOR)

    def set_cursor(self, index: int, seq: int) -> None:
        self.words[L.CONSUMER_WORD + index * L.CONSUMER_WORDS + L.C_CURSOR] = seq

    def heartbeat(self, index: int) -> None:
        self.set_entry(index, L.C_HEARTBEAT, time.monotonic_ns())

    def active_consumers(self) -> list[int]:
        return [i for i in range(L.MAX_CONSUMERS) if self.entry(i, L.C_STATE) == L.ACTIVE]

    def min_cursor(self, active: list[int]) -> int | None:
        if not active:
            return None
        words, base, width = self.words, L.CONSUMER_WORD + L.C_CURSOR, L.CONSUMER_WORDS
        return min(words[base + i * width] for i in active)

    def consumer_name(self, index: int) -> str:
        start = L.NAMES_OFFSET + index * L.NAME_BYTES
        return bytes(self.mm[start : start + L.NAME_BYTES]).rstrip(b"\0").decode(errors="replace")

    # The consumer table changes rarely, under a file lock: see enrgdaq.data.membership.
    def find_consumer(self, name: str) -> int | None:
        return membership.find(self, name)

    def register(self, name: str) -> int:
        return membership.register(self, name)

    def reactivate(self, name: str) -> int | None:
        return membership.reactivate(self, name)

    def rejoin(self, name: str) -> int:
        return membership.rejoin(self, name)

    def detach(self, name: str) -> None:
        membership.detach(self, name)

    def evict_stale(self, older_than_ns: int) -> list[str]:
        return membership.evict_stale(self, older_than_ns)

    def stats(self) -> dict[str, int]:
        words = self.words
        return {
            "write_seq": words[L.WRITE_SEQ_W],
            "slots": self.slot_count,
            "slot_size": self.slot_size,
            "blocked_ns": words[L.BLOCKED_NS_W],
            "dropped": words[L.DROPPED_W],
            "written_bytes": words[L.WRITTEN_BYTES_W],
        }

    # -- closing -------------------------------------------------------------------------
    @property
    def fd(self) -> int:
        return self._fd

    def _unmap(self) -> None:
        for attr in ("words", "data", "mm_view"):
            view = self.__dict__.pop(attr, None)
            if view is not None:
                with contextlib.suppress(BufferError):
                    view.release()
        with contextlib.suppress(BufferError):
            self.mm.close()

    def close(self) -> None:
        """Unmap (possible only once no zero-copy table of this ring is alive)."""
        self._unmap()
        with contextlib.suppress(OSError):
            os.close(self._fd)
