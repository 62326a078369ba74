"""CSV store: appends the rows of Arrow and tabular messages to CSV files.

Rows are buffered per file and appended at a flush; the ring slots that held them are given
back only after that (a crash or a failed write loses nothing). A failed write (a full disk, an
output directory that is gone) is cut back and retried with backoff by the store base class
(:mod:`enrgdaq.daq.store.retry`): every row reaches the file once.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.journal import RingPositions, WriteJournal
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigCSV,
)
from enrgdaq.daq.store.paths import modify_file_path
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import MissingDependencyError, StoreWriteError

DAQ_JOB_STORE_CSV_FLUSH_INTERVAL_SECONDS = 1
"""The original's name for the default of ``flush_interval``."""


class DAQJobStoreCSVConfig(FileStoreJobConfig, kw_only=True):
    """The CSV store's TOML: ``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig)."""


class CSVFile:
    """One CSV file. Rows are buffered in memory and appended at a flush, all or nothing: a write
    that fails is cut back to where the file ended, and the rows stay buffered for the retry, so
    that no row is written twice and the file never ends in a partial row.

    The file is opened for each flush, not kept open: a directory that was replaced, or a file
    that was moved away, is noticed (a kept descriptor would write into the old one).
    """

    def __init__(self, path: str, overwrite: bool, use_zstd: bool, fsync: bool = False) -> None:
        self.path = path
        self.overwrite = overwrite
        self.fsync = fsync
        self.rows_written = 0
        self._compressor = _zstd_compressor() if use_zstd else None
        self._header = b""
        self._chunks: list[bytes] = []
        self._rows = 0
        self._cut_to: int | None = None  # a failed write could not be cut back yet: do it first

    @property
    def pending(self) -> bool:
        return bool(self._chunks)

    def add(self, header: list[str], body: bytes, rows: int) -> None:
        """Buffer rows; ``header`` goes first into a new (empty) file."""
        if not self._chunks:
            buf = io.StringIO()
            csv.writer(buf).writerow(header)
            self._header = buf.getvalue().encode()
        self._chunks.append(body)
        self._rows += rows

    def prepare(self) -> tuple[int, bytes]:
        """(the file's length now, the bytes a write would append): for the write journal."""
        before = self._cut_to if self._cut_to is not None else _size(self.path)
        if self.overwrite:
            before = 0
        return before, self._encoded(with_header=before == 0)

    def write_out(self, data: bytes | None = None) -> None:
        """Append what is buffered (after the header when the file is new), or ``data`` from
        :meth:`prepare`; raises OSError or StoreWriteError with the rows still buffered and the
        file as it was."""
        if not self._chunks:
            return
        fd = self._open()
        try:
            if self._cut_to is not None:
                os.ftruncate(fd, self._cut_to)
                self._cut_to = None
            offset = os.lseek(fd, 0, os.SEEK_END)
            if data is None:
                data = self._encoded(with_header=offset == 0)
            try:
                _write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                self._cut_back(fd, offset, exc)
                raise
        finally:
            os.close(fd)
        self.rows_written += self._rows
        self._chunks.clear()
        self._rows = 0

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if self.overwrite else os.O_APPEND)
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            return os.open(self.path, flags, 0o644)

    def _encoded(self, with_header: bool) -> bytes:
        data = b"".join([self._header, *self._chunks] if with_header else self._chunks)
        return data if self._compressor is None else self._compressor.compress(data)  # one frame

    def _cut_back(self, fd: int, offset: int, exc: OSError) -> None:
        try:
            os.ftruncate(fd, offset)
        except OSError as cut:
            self._cut_to = offset
            raise StoreWriteError(
                f"{self.path}: {exc}; it could not be cut back to {offset} bytes yet ({cut}): "
                "tried again before the next write"
            ) from exc


def _zstd_compressor() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise MissingDependencyError("use_zstd in [store_config.csv]", "zstd", exc) from exc
    return zstandard.ZstdCompressor(level=3)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a full disk writes part, then raises)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _table_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, write_options=pa_csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def _tabular_rows(message: DAQJobMessageStoreTabular) -> list[list[Any]]:
    if message.data is not None:
        return [list(row) for row in message.data]
    columns = message.data_columns or {}
    values = [list(columns.get(k, [])) for k in message.keys]
    return [list(row) for row in zip(*values, strict=False)]


class DAQJobStoreCSV(DAQJobStore):
    config_type = DAQJobStoreCSVConfig
    config: DAQJobStoreCSVConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigCSV]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreCSVConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._files: dict[str, CSVFile] = {}
        self._dirty: set[str] = set()  # files with rows not written yet
        self._write_failed = False  # the last write failed: the next store_loop writes at once
        self._journal: WriteJournal | None = None

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Buffer the message's rows (no I/O: the store loop writes them out, see ``store_loop``)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        csv_config = message.store_config.csv
        if csv_config is None:
            return True
        path = os.path.join(
            self.config.out_dir, modify_file_path(csv_config.file_path, csv_config.add_date, message.tag)
        )
        target = self._files.get(path)
        if target is None:
            target = self._files[path] = CSVFile(
                path, csv_config.overwrite, csv_config.use_zstd, self.config.fsync
            )
        if isinstance(message, DAQJobMessageStorePyArrow):
            table = message.get_table()
            target.add(list(table.column_names), _table_body(table), table.num_rows)
            # Not released here: the store loop gives the ring slot back once the rows are
            # written, so that a crash or a failed write loses nothing (the slot is read again).
        elif isinstance(message, DAQJobMessageStoreTabular):
            rows = _tabular_rows(message)
            buf = io.StringIO()
            csv.writer(buf).writerows(rows)
            target.add(list(message.keys), buf.getvalue().encode(), len(rows))
        self._dirty.add(path)
        return True

    def store_loop(self) -> None:
        """Write the buffered rows: at once when idle, at most every second under load; at once
        when retrying a failed write, and at stop. A write error is raised with every row still
        buffered (the base class retries with backoff; the ring slots stay held meanwhile)."""
        if not self._dirty:
            return
        if not self._write_failed and not self.write_due():
            return
        self._write_failed = True
        plans = {path: self._files[path].prepare() for path in sorted(self._dirty)}
        if self._journal is not None:
            self._journal.record(
                {
                    path: (before, before + len(data))
                    for path, (before, data) in plans.items()
                    if not self._files[path].overwrite  # rewritten whole each time: nothing to undo
                },
                self.pending_ring_positions(),
            )
        for path, (_before, data) in plans.items():
            self._files[path].write_out(data)
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
            self._logger.info("rows of %s are on disk already: not written again", sorted(recovery.skip))
        return recovery.skip

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)  # gives back the slots of what was written
        if self._journal is not None and not self._dirty:
            self._journal.remove()  # a clean stop: nothing half done

    def has_unflushed_data(self) -> bool:
        return bool(self._dirty)
