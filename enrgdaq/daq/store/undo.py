"""An undo log: a write to files that overwrite their own bytes in place becomes all or nothing.

uproot extends a TTree by appending baskets and then patching, in place, the tree's metadata
(entry counts, basket tables), the directory and the file header: a process killed between two
of those patches leaves a tree whose counts disagree with its baskets (measured: 19 of 40
writers killed at random moments left a file uproot could not read, or read short). So the
ROOT store writes through :class:`UndoFile`: before a byte that existed when the write began
is overwritten, it is saved in the store's undo log, and before a file is created or grown, its
length is. The write is done when the log is removed (:meth:`UndoLog.commit`, one ``unlink``:
the one moment at which the whole write, over every file, counts). A log found at the next
start (:meth:`UndoLog.rollback`) puts every saved byte back and cuts every file to its old
length, and a file made by the cut-short write is removed: the files are as they were before it.

Records are ``length, crc32, kind, payload``; a record cut short by the kill is ignored (the
write it announced had not begun). With ``fsync`` the log is synced before each overwrite and
the files before the commit, so that a power cut is covered too.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib

HEAD = struct.Struct("<II")  # payload length, crc32 of the payload
FILE = struct.Struct("<cIQ")  # b"F", file number, its length before the write; then the path
SAVED = struct.Struct("<cIQ")  # b"S", file number, offset; then the bytes that were there


class UndoLog:
    def __init__(self, path: str, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.session = 0  # counts writes: a file joins each write once
        self._fd: int | None = None
        self._files = 0

    @property
    def active(self) -> bool:
        return self._fd is not None

    def begin(self) -> None:
        """Start a write (a log left by a failed one is rolled back first)."""
        self.rollback()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.session += 1
        self._files = 0

    def join(self, path: str, length: int) -> int:
        """A file the write touches, with its length now; returns its number in the log."""
        number = self._files
        self._files += 1
        self._append(FILE.pack(b"F", number, length) + os.fsencode(path))
        return number

    def save(self, number: int, offset: int, data: bytes) -> None:
        """Bytes of file ``number`` at ``offset`` that are about to be overwritten."""
        self._append(SAVED.pack(b"S", number, offset) + data)

    def _append(self, payload: bytes) -> None:
        assert self._fd is not None, "a write to a ROOT file outside of a store write"
        record = HEAD.pack(len(payload), zlib.crc32(payload)) + payload
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]
        if self.fsync:
            os.fsync(self._fd)

    def commit(self) -> None:
        """The write is complete (its files flushed, and synced with ``fsync``): forget the log."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        os.unlink(self.path)

    def rollback(self) -> list[str]:
        """Undo the write the log describes (none: nothing to do); returns the files it restored."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        files, saved = _parse(data)
        for number, offset, original in reversed(saved):
            path, _length = files[number]
            with contextlib.suppress(FileNotFoundError), open(path, "r+b") as f:
                f.seek(offset)
                f.write(original)
        for path, length in files.values():
            _cut(path, length, self.fsync)
        os.unlink(self.path)
        return sorted(path for path, _length in files.values())


def _parse(data: bytes) -> tuple[dict[int, tuple[str, int]], list[tuple[int, int, bytes]]]:
    files: dict[int, tuple[str, int]] = {}
    saved: list[tuple[int, int, bytes]] = []
    at = 0
    while at + HEAD.size <= len(data):
        size, crc = HEAD.unpack_from(data, at)
        payload = data[at + HEAD.size : at + HEAD.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break  # cut short by the kill: what it announced had not begun
        kind, number, value = FILE.unpack_from(payload)
        rest = payload[FILE.size :]
        if kind == b"F":
            files[number] = (os.fsdecode(rest), value)
        elif number in files:
            saved.append((number, value, rest))
        at += HEAD.size + size
    return files, saved


def _cut(path: str, length: int, fsync: bool) -> None:
    """Cut a file back to its old length; one that did not exist before the write goes."""
    with contextlib.suppress(FileNotFoundError):
        if length == 0:
            os.unlink(path)
            return
        with open(path, "r+b") as f:
            f.truncate(length)
            if fsync:
                os.fsync(f.fileno())


class UndoFile:
    """A file for uproot (``uproot.update(UndoFile(...))``): reads and writes go straight to the
    file; a write over bytes that the file had when the current write began saves them first."""

    def __init__(self, path: str, log: UndoLog) -> None:
        self.path = path
        self._log = log
        self._session = -1
        self._number = 0
        self._length = 0  # the file's length when the current write began
        self._pos = 0
        if not os.path.exists(path):
            self._join(0)  # announced before it exists: a rollback removes it
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def _join(self, length: int) -> None:
        self._number = self._log.join(self.path, length)
        self._length = length
        self._session = self._log.session

    def fileno(self) -> int:
        return self._fd

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = os.fstat(self._fd).st_size - self._pos
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        if self._session != self._log.session:
            self._join(os.fstat(self._fd).st_size)
        end = self._pos + len(view)
        if self._pos < self._length:
            kept = min(end, self._length) - self._pos
            self._log.save(self._number, self._pos, os.pread(self._fd, kept, self._pos))
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], self._pos + written)
        self._pos = end
        return len(view)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        """Writes go to the kernel at once (``pwrite``): nothing is held here."""

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int | None = None) -> int:
        if self._session != self._log.session:
            self._join(os.fstat(self._fd).st_size)
        size = self._pos if size is None else size
        if size < self._length:
            self._log.save(self._number, size, os.pread(self._fd, self._length - size, size))
        os.ftruncate(self._fd, size)
        return size

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0
