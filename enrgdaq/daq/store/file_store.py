"""``FileStore``: the part that the CSV, Raw and Parquet stores share.

* **Names**: ``out_dir`` joined with the producer's ``file_path``, the message's
  ``tag`` before the extension and, with ``add_date``, the date prefix
  ``YYYY-MM-DD_`` of the day the store handles the message (so files roll over at
  midnight; :attr:`FileStore.today` is the clock, which a test can steer).
* **Writes**: what ``handle_message`` buffers per file (:class:`AppendFile`) is
  written in ``store_loop`` when the flush policy says so (``write_due``), every
  file of a write all or nothing; ring slots are given back by the base class
  only after that.
* **Exactly once across a kill -9**: before each write the appended files'
  lengths and the ring positions the write covers go to the write journal
  (:mod:`enrgdaq.daq.store.journal`); replaced files (``overwrite = true``) are
  written first and are not journaled: writing one again after a crash gives the
  same file, so a write of replaced files only records no ring positions (its
  payloads are read and written again).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from typing import Any

from enrgdaq.daq.store.append import AppendFile, data_size
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.journal import RingPositions, WriteJournal
from enrgdaq.daq.store.paths import COMPRESSED_SUFFIXES, modify_file_path
from enrgdaq.data.settings import DataPlaneSettings


def dated_file_path(out_dir: str, file_path: str, add_date: bool, tag: str | None, day: date | None) -> str:
    """The original's naming (:func:`modify_file_path`) with the date of ``day``, under ``out_dir``."""
    directory, name = os.path.split(modify_file_path(file_path, False, tag))
    if add_date and day is not None:
        name = f"{day.isoformat()}_{name}"
    return os.path.join(out_dir, directory, name)


def numbered(path: str, n: int) -> str:
    """``path`` for n = 0, else ``_n`` before its extension: ``data.parquet`` -> ``data_1.parquet``
    (a second file beside the first, for tables of another schema)."""
    if n == 0:
        return path
    directory, name = os.path.split(path)
    compressed = next((s for s in COMPRESSED_SUFFIXES if name.endswith(s)), "")
    stem, ext = os.path.splitext(name[: len(name) - len(compressed)])
    return os.path.join(directory, f"{stem}_{n}{ext}{compressed}")


class FileStore(DAQJobStore):
    """A store that buffers per file and writes at a flush, journaled (see the module docstring).

    Subclasses buffer in ``handle_message`` with :meth:`buffered` and may extend ``store_loop``.
    """

    config: FileStoreJobConfig

    def __init__(self, config: FileStoreJobConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._files: dict[str, AppendFile] = {}
        self._dirty: set[str] = set()  # files with data not written yet
        self._write_failed = False  # the last write failed: the next store_loop writes at once
        self._journal: WriteJournal | None = None
        self.today: Callable[[], date] = date.today
        self._paths: dict[tuple[str, str | None, date | None], str] = {}
        """The day of a message, for ``add_date`` names (taken when the store handles it)."""

    def output_path(self, file_path: str, add_date: bool, tag: str | None) -> str:
        """The file of a message (see the module docstring); the day is taken now."""
        key = (file_path, tag, self.today() if add_date else None)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) > 4096:  # tags that keep changing, or many days
                self._paths.clear()
            path = self._paths[key] = dated_file_path(self.config.out_dir, file_path, add_date, tag, key[2])
        return path

    def buffered(self, target: AppendFile, chunk: Any, rows: int) -> None:
        """Buffer ``chunk`` for ``target`` (a file of ``self._files``) until the next write."""
        target.buffer(chunk, rows)
        self._dirty.add(target.path)

    def store_loop(self) -> None:
        """Write the buffered data: at once when idle, every ``flush_interval`` under load; at once
        when retrying a failed write, and at stop. A write error is raised with everything still
        buffered (the base class retries with backoff; the ring slots stay held meanwhile)."""
        if self._dirty and (self._write_failed or self.write_due()):
            self.write_dirty()

    def write_dirty(self) -> None:
        """One write of every file with buffered data: replaced files first, then the appended
        ones, journaled (see the module docstring)."""
        self._write_failed = True
        paths = sorted(self._dirty, key=lambda p: (not self._files[p].overwrite, p))
        plans = {path: self._files[path].prepare() for path in paths}
        appended = {
            path: (before, before + data_size(data))
            for path, (before, data) in plans.items()
            if not self._files[path].overwrite
        }
        if self._journal is not None:
            self._journal.record(appended, self.pending_ring_positions() if appended else {})
        for path in paths:
            self._files[path].write_out(plans[path][1])
            self._dirty.discard(path)  # written: a retry after another file's error skips it
        self._write_failed = False

    def configure_data_plane(self, settings: DataPlaneSettings) -> None:
        super().configure_data_plane(settings)
        if settings.enabled:
            self._journal = WriteJournal(settings.run_dir, self.unique_id)

    def recover_writes(self) -> RingPositions:
        """Finish or undo the write a kill -9 cut short (see :mod:`enrgdaq.daq.store.journal`)."""
        if self._journal is None:
            return {}
        recovery = self._journal.recover()
        if recovery.skip:
            self._logger.info("data of %s is on disk already: not written again", sorted(recovery.skip))
        return recovery.skip

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)  # gives back the slots of what was written
        if self._journal is not None and not self._dirty and self._checked_last_write:
            self._journal.remove()  # a clean stop: nothing half done

    def has_unflushed_data(self) -> bool:
        return bool(self._dirty)
