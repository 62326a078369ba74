"""Raw store: raw bytes appended to a file as sent; Arrow tables as an Arrow IPC stream.

What a ``[store_config.raw]`` file holds:

* raw bytes (``DAQJobMessageStoreRaw``: camera frames, digitizer blocks): appended
  as sent, nothing added between messages;
* Arrow tables, and tabular rows (made a table): one Arrow IPC stream per file,
  its schema once at the start, then record batches, no end-of-stream marker, so
  that ``pyarrow.ipc.open_stream(path).read_all()`` reads it at any time
  (:mod:`enrgdaq.daq.store.arrow_stream`). A table of another schema goes to
  ``name_1.ext`` (then ``_2``, ...), raw bytes never into a stream file.
* ``overwrite = true`` (the original's default for this store): the file holds the
  newest message only, replaced whole and atomically at each write (bytes as sent,
  a table as a whole stream); older messages of the same write are not written.

Appends go through the write journal like the CSV store's (exactly once across a
kill -9); failed writes are cut back and retried (:class:`FileStore`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.append import AppendFile, Chunk, file_size
from enrgdaq.daq.store.arrow_stream import (
    BYTES,
    END_OF_STREAM,
    FileKinds,
    Kind,
    StreamFile,
    plain_table,
    stream_schema,
    table_of_rows,
)
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.file_store import FileStore
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigRaw,
)

DAQ_JOB_STORE_RAW_FLUSH_INTERVAL_SECONDS = 1
"""The original's name for the default of ``flush_interval``."""


class DAQJobStoreRawConfig(FileStoreJobConfig, kw_only=True):
    """The Raw store's TOML: ``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig)."""


class LatestFile(AppendFile):
    """A file replaced by the newest message at each write (``overwrite = true``)."""

    def __init__(self, path: str, fsync: bool) -> None:
        super().__init__(path, overwrite=True, fsync=fsync)

    def buffer(self, chunk: Any, rows: int) -> None:
        self._chunks.clear()
        self._rows = 0
        super().buffer(chunk, rows)

    def encode(self, chunks: list[Any], new_file: bool) -> list[Chunk]:
        latest = chunks[-1]
        if not isinstance(latest, pa.Table):
            return [latest]
        return [latest.schema.serialize(), *(b.serialize() for b in latest.to_batches()), END_OF_STREAM]


def _kind_on_disk(path: str) -> Kind:
    """An existing file's kind: an Arrow stream's schema, else raw bytes (OSError goes up: a
    directory that is gone is a write error, retried)."""
    if file_size(path) == 0:
        return None
    return stream_schema(path) or BYTES


class DAQJobStoreRaw(FileStore):
    config_type = DAQJobStoreRawConfig
    config: DAQJobStoreRawConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigRaw]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStoreRaw,
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreRawConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._kinds = FileKinds(_kind_on_disk)

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Buffer the message's bytes or table (the store loop writes them, see ``store_loop``)."""
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        raw_config = message.store_config.raw
        if raw_config is None:
            return True
        base = self.output_path(raw_config.file_path, raw_config.add_date, message.tag)
        if isinstance(message, DAQJobMessageStoreRaw):
            self._buffer_bytes(base, raw_config.overwrite, message.data)
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
        self._buffer_table(base, raw_config.overwrite, plain_table(table))
        return True

    def _buffer_bytes(self, base: str, overwrite: bool, data: bytes) -> None:
        path = base if overwrite else self._kinds.for_bytes(base)
        target = self._files.get(path)
        if target is None:
            fsync = self.config.fsync
            target = LatestFile(path, fsync) if overwrite else AppendFile(path, False, fsync)
            self._files[path] = target
        self.buffered(target, data, 1)

    def _buffer_table(self, base: str, overwrite: bool, table: pa.Table) -> None:
        if overwrite:
            target = self._files.get(base)
            if target is None:
                target = self._files[base] = LatestFile(base, self.config.fsync)
            self.buffered(target, table, table.num_rows)
            return
        path, table = self._kinds.for_table(base, table)
        stream = self._files.get(path)
        if stream is None:
            stream = self._files[path] = StreamFile(path, table.schema, False, self.config.fsync)
        assert isinstance(stream, StreamFile)
        stream.add_table(table)
        self._dirty.add(path)
