"""CSV store: appends the rows of Arrow and tabular messages to CSV files.

Rows are buffered per file and appended at a flush (:class:`FileStore`); the ring
slots that held them are given back only after that (a crash or a failed write
loses nothing), and a write journal keeps a kill -9 from writing a row twice. A
failed write (a full disk, an output directory that is gone) is cut back and
retried with backoff by the store base class (:mod:`enrgdaq.daq.store.retry`):
every row reaches the file once.

* The header goes once into each file: into the first write of a new (empty) file.
* ``use_zstd``: each write is one independent zstd frame, so that a file cut
  short by a crash still decompresses up to its last whole write (and the write
  journal cuts a torn frame away at the next start).
* ``overwrite = true``: each write replaces the file (header and the rows of that
  write: a "latest values" file), atomically.
"""

from __future__ import annotations

import csv
import io
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.append import AppendFile, Chunk
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.file_store import FileStore
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigCSV,
)
from enrgdaq.errors import MissingDependencyError

DAQ_JOB_STORE_CSV_FLUSH_INTERVAL_SECONDS = 1
"""The original's name for the default of ``flush_interval``."""


class DAQJobStoreCSVConfig(FileStoreJobConfig, kw_only=True):
    """The CSV store's TOML: ``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig)."""


class CSVFile(AppendFile):
    """One CSV file: rows buffered as encoded CSV text, appended at a flush after the header when
    the file is new, all or nothing (see :class:`AppendFile`)."""

    def __init__(self, path: str, overwrite: bool, use_zstd: bool, fsync: bool = False) -> None:
        super().__init__(path, overwrite, fsync)
        self._compressor = _zstd_compressor() if use_zstd else None
        self._header = b""

    def add(self, header: list[str], body: bytes, rows: int) -> None:
        """Buffer rows; ``header`` goes first into a new (empty) file."""
        if not self.pending:
            buf = io.StringIO()
            csv.writer(buf).writerow(header)
            self._header = buf.getvalue().encode()
        self.buffer(body, rows)

    def encode(self, chunks: list[Any], new_file: bool) -> list[Chunk]:
        data = b"".join([self._header, *chunks] if new_file else chunks)
        return [data if self._compressor is None else self._compressor.compress(data)]  # one frame


def _zstd_compressor() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise MissingDependencyError("use_zstd in [store_config.csv]", "zstd", exc) from exc
    return zstandard.ZstdCompressor(level=3)


def _table_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, write_options=pa_csv.WriteOptions(include_header=False))
    return bytes(sink.getvalue().to_pybytes())


def _tabular_rows(message: DAQJobMessageStoreTabular) -> list[list[Any]]:
    if message.data is not None:
        return [list(row) for row in message.data]
    columns = message.data_columns or {}
    values = [list(columns.get(k, [])) for k in message.keys]
    return [list(row) for row in zip(*values, strict=False)]


class DAQJobStoreCSV(FileStore):
    config_type = DAQJobStoreCSVConfig
    config: DAQJobStoreCSVConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigCSV]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]
    _files: dict[str, CSVFile]  # type: ignore[assignment]

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Buffer the message's rows (no I/O: the store loop writes them out, see ``store_loop``)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        csv_config = message.store_config.csv
        if csv_config is None:
            return True
        path = self.output_path(csv_config.file_path, csv_config.add_date, message.tag)
        target = self._files.get(path)
        if target is None:
            target = self._files[path] = CSVFile(
                path, csv_config.overwrite, csv_config.use_zstd, self.config.fsync
            )
        if isinstance(message, DAQJobMessageStorePyArrow):
            table = message.get_table()
            # Encoded now; the ring slot is given back once the rows are written (by the base).
            target.add(list(table.column_names), _table_body(table), table.num_rows)
        elif isinstance(message, DAQJobMessageStoreTabular):
            rows = _tabular_rows(message)
            buf = io.StringIO()
            csv.writer(buf).writerows(rows)
            target.add(list(message.keys), buf.getvalue().encode(), len(rows))
        self._dirty.add(path)
        return True
