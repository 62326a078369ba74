"""Files that a store appends to all or nothing, or replaces whole.

A file store buffers what it receives and writes it at a flush
(:mod:`enrgdaq.daq.store.flush`). :class:`AppendFile` is one file's buffer and
its write:

* **appended** (the default): the file is opened for each write, so that a
  directory that was replaced, or a file moved away, is noticed (a kept
  descriptor would write into the old one). A write that fails (a full disk) is
  cut back to the file's old length: the retry writes every byte once, and the
  file never ends in a torn record.
* **replaced** (``overwrite = true``): written to a temporary file beside it
  (``.<name>.tmp``) and renamed over it, so that a reader sees the old content or
  the new, never a mix, and a write repeated after a crash gives the same file.

Subclasses say what a write's bytes are (:meth:`AppendFile.encode`): the CSV store
adds the header to a new file and compresses, an Arrow stream adds its schema.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from enrgdaq.errors import StoreWriteError

IOV_MAX = 1024
"""Buffers per ``os.writev`` call (Linux's limit)."""

Chunk = Any
"""Something with the buffer protocol: bytes, memoryview, ``pyarrow.Buffer``."""


class AppendFile:
    """One output file: what was buffered for it since its last write, and that write."""

    def __init__(self, path: str, overwrite: bool, fsync: bool = False) -> None:
        self.path = path
        self.overwrite = overwrite
        self.fsync = fsync
        self.rows_written = 0
        self._chunks: list[Any] = []
        self._rows = 0
        self._cut_to: int | None = None  # a failed write could not be cut back yet: do it first

    @property
    def pending(self) -> bool:
        return bool(self._chunks)

    @property
    def pending_rows(self) -> int:
        return self._rows

    def buffer(self, chunk: Any, rows: int) -> None:
        """Keep ``chunk`` (``rows`` records) for the next write."""
        self._chunks.append(chunk)
        self._rows += rows

    def encode(self, chunks: list[Any], new_file: bool) -> list[Chunk]:
        """The bytes a write puts in the file for ``chunks``; ``new_file``: the file is empty (or
        replaced), e.g. for a header. By default the chunks themselves."""
        return list(chunks)

    def prepare(self) -> tuple[int, list[Chunk]]:
        """(the file's length now, what a write would add): for the write journal. A replaced
        file starts at 0."""
        if self.overwrite:
            return 0, self.encode(self._chunks, new_file=True)
        before = self._cut_to if self._cut_to is not None else file_size(self.path)
        return before, self.encode(self._chunks, new_file=before == 0)

    def write_out(self, data: list[Chunk] | None = None) -> None:
        """Write what is buffered (or ``data`` from :meth:`prepare`). Raises OSError or
        StoreWriteError with everything still buffered and the file as it was."""
        if not self._chunks:
            return
        if self.overwrite:
            self._replace(self.encode(self._chunks, new_file=True) if data is None else data)
        else:
            self._append(data)
        self.rows_written += self._rows
        self._chunks.clear()
        self._rows = 0

    def _append(self, data: list[Chunk] | None) -> None:
        fd = open_for_writing(self.path, os.O_APPEND)
        try:
            if self._cut_to is not None:
                os.ftruncate(fd, self._cut_to)
                self._cut_to = None
            offset = os.lseek(fd, 0, os.SEEK_END)
            if data is None:
                data = self.encode(self._chunks, new_file=offset == 0)
            try:
                write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                self._cut_back(fd, offset, exc)
                raise
        finally:
            os.close(fd)

    def _replace(self, data: list[Chunk]) -> None:
        replace_file(self.path, data, self.fsync)

    def _cut_back(self, fd: int, offset: int, exc: OSError) -> None:
        try:
            os.ftruncate(fd, offset)
        except OSError as cut:
            self._cut_to = offset
            raise StoreWriteError(
                f"{self.path}: {exc}; it could not be cut back to {offset} bytes yet ({cut}): "
                "tried again before the next write"
            ) from exc


def open_for_writing(path: str, mode: int) -> int:
    """``os.open`` for writing with ``mode`` (``O_APPEND``, ``O_TRUNC``), making the directory."""
    flags = os.O_WRONLY | os.O_CREAT | mode
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return os.open(path, flags, 0o644)


def replace_file(path: str, data: list[Chunk], fsync: bool) -> None:
    """Write ``data`` to ``.<name>.tmp`` beside ``path`` and rename it over ``path`` (atomic)."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = open_for_writing(tmp, os.O_TRUNC)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except OSError:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if fsync:
        sync_directory(directory)


def sync_directory(directory: str) -> None:
    """``fsync`` a directory, so that a rename or a new file in it survives a power cut."""
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: list[Chunk]) -> None:
    """Write every byte of ``data`` (a full disk writes part, then raises)."""
    views = [memoryview(chunk).cast("B") for chunk in data]
    views = [v for v in views if v.nbytes]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + IOV_MAX])
        while written and first < len(views):
            size = views[first].nbytes
            if written >= size:
                written -= size
                first += 1
            else:
                views[first] = views[first][written:]
                written = 0


def data_size(data: list[Chunk]) -> int:
    return sum(memoryview(chunk).nbytes for chunk in data)


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
