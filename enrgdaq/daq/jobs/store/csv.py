"""CSV store: appends the rows of Arrow and tabular messages to CSV files."""

from __future__ import annotations

import csv
import io
import os
import time
from typing import IO, Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv

from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigCSV,
)
from enrgdaq.daq.store.paths import modify_file_path
from enrgdaq.errors import MissingDependencyError

DAQ_JOB_STORE_CSV_FLUSH_INTERVAL_SECONDS = 1


class DAQJobStoreCSVConfig(DAQJobConfig, kw_only=True):
    """``out_dir``: directory that every ``file_path`` is relative to."""

    out_dir: str = "out/"


class CSVFile:
    """One open CSV file; rows are written at once and flushed by the store."""

    def __init__(self, path: str, overwrite: bool, use_zstd: bool) -> None:
        self.path = path
        self.overwrite = overwrite
        self.use_zstd = use_zstd
        self.rows_written = 0
        self._raw: IO[bytes] | None = None
        self._out: Any = None
        self.has_header = False

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        mode = "wb" if self.overwrite else "ab"
        self._raw = open(self.path, mode)  # noqa: SIM115 - kept open for the store's lifetime
        self.has_header = not self.overwrite and self._raw.tell() > 0
        if self.use_zstd:
            try:
                import zstandard
            except ImportError as exc:
                raise MissingDependencyError("use_zstd in [store_config.csv]", "zstd", exc) from exc
            self._out = zstandard.ZstdCompressor(level=3).stream_writer(self._raw)
        else:
            self._out = self._raw

    def write(self, header: list[str], body: bytes, rows: int) -> None:
        if self._out is None:
            self.open()
        if not self.has_header:
            buf = io.StringIO()
            csv.writer(buf).writerow(header)
            self._out.write(buf.getvalue().encode())
            self.has_header = True
        self._out.write(body)
        self.rows_written += rows

    def flush(self) -> None:
        if self._out is None:
            return
        if self.use_zstd:
            import zstandard

            self._out.flush(zstandard.FLUSH_FRAME)
        self._out.flush()
        if self.overwrite:
            self.close()

    def close(self) -> None:
        if self._out is None:
            return
        if self.use_zstd:
            self._out.close()
        elif self._raw is not None:
            self._raw.close()
        self._out = self._raw = None


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
        self._dirty: set[str] = set()
        self._last_flush = time.monotonic()

    def handle_message(self, message: DAQJobMessage) -> bool:
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
            target = self._files[path] = CSVFile(path, csv_config.overwrite, csv_config.use_zstd)
        if isinstance(message, DAQJobMessageStorePyArrow):
            table = message.get_table()
            target.write(list(table.column_names), _table_body(table), table.num_rows)
            # Not released here: the store loop gives the ring slot back once the rows are
            # flushed, so that a crash before the flush loses nothing (the slot is read again).
        elif isinstance(message, DAQJobMessageStoreTabular):
            rows = _tabular_rows(message)
            buf = io.StringIO()
            csv.writer(buf).writerows(rows)
            target.write(list(message.keys), buf.getvalue().encode(), len(rows))
        self._dirty.add(path)
        return True

    def store_loop(self) -> None:
        """Flush at once when idle, at most every second under load."""
        if not self._dirty:
            return
        now = time.monotonic()
        if now - self._last_flush < DAQ_JOB_STORE_CSV_FLUSH_INTERVAL_SECONDS and self._pending_input():
            return
        for path in self._dirty:
            self._files[path].flush()
        self._dirty.clear()
        self._last_flush = now

    def has_unflushed_data(self) -> bool:
        return bool(self._dirty)

    def _pending_input(self) -> bool:
        plane = self.message_plane
        if plane is None:
            return False
        import zmq

        return bool(plane.sub.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def __del__(self) -> None:
        for f in getattr(self, "_files", {}).values():
            f.flush()
            f.close()
