"""Parquet store (*new*): Arrow tables and tabular rows to Parquet files, row groups by size or time.

How a file grows, and why it survives a kill -9 with every row once:

* At each flush (``flush_interval``, the shared policy) the new rows are appended
  to the file's write-ahead file ``_<name>.wal.arrows`` beside it (an Arrow IPC
  stream; journaled like the CSV store's appends, so a kill -9 neither loses nor
  repeats a row), and their ring slots are given back.
* A row group is closed, i.e. the write-ahead rows become new row groups of the
  Parquet file (:mod:`enrgdaq.daq.store.parquet_append`), when they reach the
  producer's ``row_group_rows`` or the store's ``row_group_mb``, after
  ``row_group_seconds``, at the midnight roll-over of an ``add_date`` file, and
  at a stop. The file is a valid Parquet file before and after each of these
  appends; a crash during one is finished or undone at the store's next start.
* A restarted store appends to the file of its previous run; a table whose
  schema differs (and cannot be cast) goes to ``name_1.parquet``, ``_2``, ...
* ``overwrite = true``: each write replaces the file with the rows of that
  write (a "latest values" file), atomically; no write-ahead file.

Raw bytes are refused (counted ``unsupported``).
"""

from __future__ import annotations

import os
import time
from datetime import date
from typing import Annotated, Any, ClassVar

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.append import AppendFile, Chunk, file_size
from enrgdaq.daq.store.arrow_stream import (
    OTHER,
    FileKinds,
    Kind,
    StreamFile,
    plain_table,
    stream_schema,
    table_of_rows,
)
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.file_store import FileStore
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigParquet,
)
from enrgdaq.daq.store.parquet_append import (
    SchemaMismatchError,
    convert_wal,
    pending_files,
    recover,
    wal_path,
)

DEFAULTS = DAQJobStoreConfigParquet(file_path="")
"""Row groups of a file whose rows a previous run left (no producer config known yet)."""


class DAQJobStoreParquetConfig(FileStoreJobConfig, kw_only=True):
    """The Parquet store's TOML: ``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig),
    and when the rows waiting in a write-ahead file become a row group of the Parquet file:

    Attributes:
        row_group_seconds: at the latest this long after their first row.
        row_group_mb: once the write-ahead file is this large (Arrow bytes).
    """

    row_group_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    row_group_mb: Annotated[float, msgspec.Meta(gt=0, le=65536)] = 256.0


class ParquetTarget:
    """One Parquet file of this run: its write-ahead file and when its rows become row groups."""

    def __init__(self, path: str, wal: StreamFile, config: DAQJobStoreConfigParquet, day: date | None):
        self.path = path
        self.wal = wal
        self.compression = config.compression
        self.row_group_rows = config.row_group_rows
        self.day = day  # add_date: the day in its name (converted at once when it is over)
        self.since: float | None = None  # when its oldest row not in the Parquet file came
        self.converted_rows = 0  # of wal.rows_written
        self.broken = False

    def waiting_rows(self) -> int:
        return self.wal.rows_written - self.converted_rows

    def converted(self) -> None:
        self.converted_rows = self.wal.rows_written
        self.since = None


class ReplacedParquet(AppendFile):
    """A Parquet file replaced by the rows of each write (``overwrite = true``)."""

    def __init__(self, path: str, compression: str, fsync: bool) -> None:
        super().__init__(path, overwrite=True, fsync=fsync)
        self.compression = compression

    def buffer(self, chunk: Any, rows: int) -> None:
        if self._chunks and not chunk.schema.equals(self._chunks[0].schema):
            self._chunks.clear()  # another schema: the newer rows replace the file anyway
            self._rows = 0
        super().buffer(chunk, rows)

    def encode(self, chunks: list[Any], new_file: bool) -> list[Chunk]:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.concat_tables(chunks), sink, compression=self.compression)
        return [sink.getvalue()]


def _kind_on_disk(path: str) -> Kind:
    """The schema of the Parquet file, else of its write-ahead file; None when neither exists;
    ``OTHER`` for a file that is neither (an error reading it, e.g. its directory gone, is raised:
    a write error, retried)."""
    if file_size(path):
        with open(path, "rb"):
            pass
        try:
            return pq.read_schema(path)
        except (pa.ArrowInvalid, OSError):
            return OTHER
    if file_size(wal_path(path)):
        return stream_schema(wal_path(path)) or OTHER
    return None


class DAQJobStoreParquet(FileStore):
    config_type = DAQJobStoreParquetConfig
    config: DAQJobStoreParquetConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigParquet]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreParquetConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._kinds = FileKinds(_kind_on_disk)
        self._parquet_files: dict[str, ParquetTarget] = {}
        self._leftovers: set[str] = set()  # files with rows a previous run left in write-ahead files
        self._interrupted: set[str] = set()  # files whose adding of rows failed in this run

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Buffer the message's rows for the file's write-ahead file (written in ``store_loop``)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        config = message.store_config.parquet
        if config is None:
            return True
        if isinstance(message, DAQJobMessageStoreTabular):
            try:
                table = table_of_rows(message)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                self.refuse(message, f"its rows make no Arrow table ({exc})")
                return True
        else:
            assert isinstance(message, DAQJobMessageStorePyArrow)
            table = message.get_table()
        base = self.output_path(config.file_path, config.add_date, message.tag)
        if config.overwrite:
            replaced = self._files.get(base)
            if replaced is None:
                replaced = self._files[base] = ReplacedParquet(base, config.compression, self.config.fsync)
            self.buffered(replaced, table, table.num_rows)
            return True
        path, table = self._kinds.for_table(base, plain_table(table))
        target = self._parquet_files.get(path) or self._new_target(path, table.schema, config)
        if target.since is None:
            target.since = time.monotonic()
        target.wal.add_table(table)
        self._dirty.add(target.wal.path)
        return True

    def _new_target(self, path: str, schema: pa.Schema, config: DAQJobStoreConfigParquet) -> ParquetTarget:
        wal = StreamFile(wal_path(path), schema, False, self.config.fsync)
        self._files[wal.path] = wal
        target = self._parquet_files[path] = ParquetTarget(
            path, wal, config, self.today() if config.add_date else None
        )
        return target

    def store_loop(self) -> None:
        """Write what was buffered to the write-ahead files (the base class: journaled, slots given
        back after it); then, with nothing left to write, close the row groups that are due.

        An adding of rows that failed in this run is finished or undone first, before its
        write-ahead file grows (its rows may be in the Parquet file already)."""
        for path in sorted(self._interrupted):
            recover(path, self._logger)
            self._interrupted.discard(path)
        super().store_loop()
        if not self._dirty:
            self._close_due_row_groups()

    def _close_due_row_groups(self) -> None:
        stopping = self._has_been_freed
        for path in sorted(self._leftovers):
            target = self._parquet_files.get(path)
            if self._convert(path, target, stopping):
                self._leftovers.discard(path)
        today = self.today()
        for path, target in list(self._parquet_files.items()):
            if target.broken or not target.waiting_rows() or not (stopping or self._due(target, today)):
                continue
            self._convert(path, target, stopping)
            if target.day is not None and target.day != today:
                del self._parquet_files[path]  # a past day's file: nothing more comes for it
                del self._files[target.wal.path]

    def _due(self, target: ParquetTarget, today: date) -> bool:
        return (
            target.waiting_rows() >= target.row_group_rows
            or (target.since is not None and time.monotonic() - target.since >= self.config.row_group_seconds)
            or (target.day is not None and target.day != today)
            or file_size(target.wal.path) >= self.config.row_group_mb * 1e6
        )

    def _convert(self, path: str, target: ParquetTarget | None, stopping: bool) -> bool:
        """The waiting rows of ``path`` into it; True when done. A write error is raised (retried
        with backoff), except at a stop: the rows then wait for the next run (logged)."""
        config = target or DEFAULTS
        try:
            rows = convert_wal(
                path,
                config.compression,
                config.row_group_rows,
                self.config.fsync,
                committed=self._committed,
                log=self._logger,
            )
        except OSError as exc:
            if not stopping:
                self._interrupted.add(path)
                raise
            self._logger.error(
                "%s: cannot add the waiting rows at the stop (%s): they stay in %s for the next run",
                path,
                exc,
                wal_path(path),
            )
            return False
        except SchemaMismatchError as exc:
            self._logger.error("%s (left in %s, not converted in this run)", exc, wal_path(path))
            if target is not None:
                target.broken = True
            return True
        if target is not None:
            target.converted()
        self._logger.debug("%s: %d row(s) added as row groups", path, rows)
        return True

    def cleanup(self) -> None:
        """The stop's last write (the base class), then the waiting rows become row groups (those
        that cannot stay in their write-ahead files for the next run)."""
        try:
            super().cleanup()
        finally:
            if not self._writes.failing and not self._dirty:
                self._close_due_row_groups()

    def _committed(self) -> None:
        """The write-ahead rows are in the Parquet file: before the write-ahead file goes, the
        journal says that the ring payloads written so far are on disk (whatever the files say)."""
        if self._journal is not None:
            self._journal.record({}, self.pending_ring_positions())

    def recover_writes(self) -> RingPositions:
        """The journal's recovery (write-ahead appends), then every Parquet file of ``out_dir`` that
        a previous run left with an append to finish or rows waiting (converted soon)."""
        skip = super().recover_writes()
        if os.path.isdir(self.config.out_dir):
            for path in pending_files(self.config.out_dir):
                recover(path, self._logger)
                if os.path.exists(wal_path(path)):
                    self._leftovers.add(path)
        return skip
