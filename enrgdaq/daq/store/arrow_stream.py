"""Arrow IPC stream files that grow, and which file a table goes to.

A stream file holds the schema once, then record batches, and no end-of-stream
marker: pyarrow's stream reader takes the end of the file as the end of the
stream, so the file is readable after every write
(``pyarrow.ipc.open_stream(path).read_all()``) and the next write appends
batches. A kill -9 in the middle of a write leaves a torn last batch, which the
write journal cuts away at the store's next start.

A file holds one kind of data: raw bytes, or batches of one schema.
:class:`FileKinds` keeps it so: a table of another schema (that cannot be cast to
the file's) goes to ``name_1.ext``, then ``name_2.ext``, ... (the first that holds
its schema or does not exist), never into a file it would make unreadable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from enrgdaq.daq.store.append import AppendFile, Chunk
from enrgdaq.daq.store.file_store import numbered
from enrgdaq.daq.store.models import DAQJobMessageStoreTabular
from enrgdaq.errors import MessageError

CONTINUATION = b"\xff\xff\xff\xff"
"""How each message of an Arrow stream starts (before its metadata's length)."""
END_OF_STREAM = CONTINUATION + b"\x00\x00\x00\x00"
MAX_SCHEMA_BYTES = 16 << 20
BYTES = "bytes"
"""The kind of a file of raw bytes (or of anything that is not an Arrow stream)."""
OTHER = "other"
"""The kind of a file that holds something this store cannot add tables to."""
MAX_NUMBERED = 1000

Kind = Any
"""None (no such file, or empty), ``BYTES``, ``OTHER``, or the ``pa.Schema`` of its tables."""


class StreamFile(AppendFile):
    """An Arrow IPC stream file (see the module docstring). Tables are kept until the write (they
    may be zero-copy views of ring slots, which stay held until then anyway) and serialized then.
    Replaced (``overwrite``): the file holds the newest table only, as a whole stream."""

    def __init__(self, path: str, schema: pa.Schema, overwrite: bool, fsync: bool = False) -> None:
        super().__init__(path, overwrite, fsync)
        self.schema = schema

    def add_table(self, table: pa.Table) -> None:
        if self.overwrite:
            self._chunks.clear()
            self._rows = 0
        self.buffer(table, table.num_rows)

    def encode(self, chunks: list[Any], new_file: bool) -> list[Chunk]:
        out: list[Chunk] = [self.schema.serialize()] if new_file else []
        for table in chunks:
            out.extend(batch.serialize() for batch in table.to_batches())
        if self.overwrite:
            out.append(END_OF_STREAM)
        return out


def stream_schema(path: str) -> pa.Schema | None:
    """The schema at the start of an Arrow stream file; None when the file does not start with one
    (raw bytes, a torn schema). An error reading the file (a directory that is gone) is raised:
    it is a write error, retried, not a kind of file."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8 or prefix[:4] != CONTINUATION:
            return None
        length = int.from_bytes(prefix[4:], "little")
        if not 0 < length <= MAX_SCHEMA_BYTES:
            return None
        message = prefix + f.read(length)
    try:
        return ipc.read_schema(pa.py_buffer(message))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None


def plain_table(table: pa.Table) -> pa.Table:
    """``table`` with dictionary columns decoded (a stream of appended batches has no room for
    dictionary batches that change)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def table_of_rows(message: DAQJobMessageStoreTabular) -> pa.Table:
    """A tabular message's rows as a table (column types inferred by pyarrow; raises
    ``pa.ArrowInvalid`` or ``TypeError`` for values that make no column)."""
    if message.data_columns is not None:
        columns = {key: list(message.data_columns.get(key, [])) for key in message.keys}
    else:
        rows = message.data or []
        columns = {
            key: [row[i] if i < len(row) else None for row in rows] for i, key in enumerate(message.keys)
        }
    return pa.table(columns)


class FileKinds:
    """What each output file holds, so that each holds one kind (see the module docstring).
    ``kind_on_disk(path)`` tells it for a file this run has not used yet."""

    def __init__(self, kind_on_disk: Callable[[str], Kind]) -> None:
        self._kind_on_disk = kind_on_disk
        self._kinds: dict[str, Kind] = {}

    def kind(self, path: str) -> Kind:
        if path not in self._kinds:
            self._kinds[path] = self._kind_on_disk(path)
        return self._kinds[path]

    def for_bytes(self, base: str) -> str:
        """The file for raw bytes: ``base`` unless it holds tables."""
        for n in range(MAX_NUMBERED):
            path = numbered(base, n)
            kind = self.kind(path)
            if kind is None or kind == BYTES:
                self._kinds[path] = BYTES
                return path
        raise MessageError(f"{base}: no file among {MAX_NUMBERED} numbered ones takes raw bytes")

    def for_table(self, base: str, table: pa.Table) -> tuple[str, pa.Table]:
        """The file for ``table``, and the table as that file holds it (cast to its schema)."""
        for n in range(MAX_NUMBERED):
            path = numbered(base, n)
            kind = self.kind(path)
            if kind is None:
                self._kinds[path] = table.schema
                return path, table
            if isinstance(kind, pa.Schema):
                fitted = _fitted(table, kind)
                if fitted is not None:
                    return path, fitted
        raise MessageError(f"{base}: no file among {MAX_NUMBERED} numbered ones takes this schema")

    def forget(self, path: str) -> None:
        """``path`` changed on disk behind this cache (e.g. a file replaced whole): look again."""
        self._kinds.pop(path, None)


def _fitted(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` with ``schema`` (the same, or safely cast to it), or None."""
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        return None
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError):
        return None
