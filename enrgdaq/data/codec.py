"""What a ring slot holds: a message's header and its payload's raw buffers.

::

    [u32 layout length][SlotLayout, msgpack][pad to 64][buffer][pad to 64][buffer]...

An Arrow table travels as its columns' raw buffers (validity, offsets, data)
and is rebuilt on the consumer side with ``Array.from_buffers`` over buffers
that point into the mapping: no copy, no IPC parsing. Columns of nested types
(lists, structs) travel as one Arrow IPC stream instead. Raw bytes are one
buffer. The schema is sent as IPC bytes, cached on both sides.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw
from enrgdaq.errors import MessageError
from enrgdaq.message.wire import MessageTypes

ALIGN = 64
_LEN = struct.Struct("<I")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _plain(dtype: pa.DataType) -> bool:
    """Types whose arrays are fully described by their own buffers (no children, dictionary, extension)."""
    t = pa.types
    return not isinstance(dtype, pa.ExtensionType) and (
        t.is_primitive(dtype)
        or t.is_string(dtype)
        or t.is_large_string(dtype)
        or t.is_binary(dtype)
        or t.is_large_binary(dtype)
        or t.is_fixed_size_binary(dtype)
        or t.is_decimal(dtype)
    )


class SlotLayout(msgspec.Struct, array_like=True):
    type_name: str
    header: msgspec.Raw
    schema: bytes | None = None
    num_rows: int = 0
    # per column: [null_count, offset, n_buffers, start0, length0, start1, length1, ...]; start -1: no buffer
    columns: list[list[int]] = []
    ipc: list[int] | None = None  # [start, length] of an IPC stream (nested types)
    raw: list[int] | None = None  # [start, length] of raw bytes


def _no_payload(obj: Any) -> Any:
    """Encodes the table of a message as nil: its buffers travel beside the header."""
    if isinstance(obj, pa.Table):
        return None
    raise MessageError(f"cannot put a value of type {type(obj).__name__} in a ring slot")


class SlotEncoder:
    """Writes messages into slots. One per producing thread; a few microseconds plus the copy."""

    def __init__(self) -> None:
        self._header = msgspec.msgpack.Encoder(enc_hook=_no_payload)
        self._layout = msgspec.msgpack.Encoder()
        # The last schema, its IPC bytes, and whether all its columns are flat (no children).
        self._schema: pa.Schema | None = None
        self._schema_bytes = b""
        self._flat = True
        # The last table's layout: a producer that hands the same table object again (its
        # buffers refilled in place, as a readout loop does) skips recomputing it.
        self._last: tuple[pa.Table, list[list[int]], list[Any], int, bytes] | None = None

    def _remember(self, schema: pa.Schema) -> None:
        if self._schema is None or not schema.equals(self._schema):
            self._schema, self._schema_bytes = schema, schema.serialize().to_pybytes()
            self._flat = all(_plain(t) for t in schema.types)

    def encode(self, message: DAQJobMessage, slot: memoryview) -> int:
        """Write ``message`` into ``slot``; returns the bytes used. Raises MessageError if it does not fit."""
        buffers: list[Any] = []
        layout = SlotLayout(type_name=type(message).__name__, header=msgspec.Raw(b""))
        total = 0
        if isinstance(message, DAQJobMessageStorePyArrow) and message.table is not None:
            total = self._table_layout(message.table, layout, buffers)
            header = self._header.encode(message)
        elif isinstance(message, DAQJobMessageStoreRaw):
            data = message.data
            buffers.append(data)
            layout.raw = [0, len(data)]
            total = _align(len(data))
            message.data = b""
            try:
                header = self._header.encode(message)
            finally:
                message.data = data
        else:
            header = self._header.encode(message)
        layout.header = msgspec.Raw(header)
        head = self._layout.encode(layout)
        # Buffer starts are relative to the buffer area, which begins after the layout.
        area = _align(_LEN.size + len(head))
        if area + total > len(slot):
            raise MessageError(f"payload of {area + total} bytes does not fit a slot of {len(slot)} bytes")
        _LEN.pack_into(slot, 0, len(head))
        slot[_LEN.size : _LEN.size + len(head)] = head
        pos = area
        for buffer in buffers:
            view = memoryview(buffer)
            if view.format != "B":
                view = view.cast("B")
            size = view.nbytes
            slot[pos : pos + size] = view
            pos += _align(size)
        return pos

    def _table_layout(self, table: pa.Table, layout: SlotLayout, buffers: list[Any]) -> int:
        last = self._last
        if last is not None and last[0] is table:
            layout.num_rows = table.num_rows
            layout.schema = last[4]
            layout.columns = last[1]
            buffers.extend(last[2])
            return last[3]
        total = self._compute_layout(table, layout, buffers)
        if self._flat and layout.schema is not None:
            self._last = (table, layout.columns, list(buffers), total, layout.schema)
        return total

    def _compute_layout(self, table: pa.Table, layout: SlotLayout, buffers: list[Any]) -> int:
        layout.num_rows = table.num_rows
        self._remember(table.schema)
        layout.schema = self._schema_bytes
        if not self._flat:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            data = sink.getvalue()
            layout.ipc = [0, data.size]
            buffers.append(data)
            return _align(data.size)
        start = 0
        columns = layout.columns = []
        for index in range(table.num_columns):
            column = table.column(index)
            array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            bufs = array.buffers()
            entry = [array.null_count, array.offset, len(bufs)]
            for buf in bufs:
                if buf is None:
                    entry += (-1, 0)
                    continue
                size = buf.size
                entry += (start, size)
                buffers.append(buf)
                start += _align(size)
            columns.append(entry)
        return start


class SlotDecoder:
    """Reads messages from slots, zero-copy for Arrow tables. One per consuming thread."""

    def __init__(self, types: MessageTypes | None = None) -> None:
        self._types = types or MessageTypes()
        self._layout = msgspec.msgpack.Decoder(SlotLayout)
        self._headers: dict[type, msgspec.msgpack.Decoder[Any]] = {}
        self._schemas: dict[bytes, tuple[pa.Schema, list[pa.DataType]]] = {}

    def _schema(self, data: bytes) -> tuple[pa.Schema, list[pa.DataType]]:
        found = self._schemas.get(data)
        if found is None:
            schema = pa.ipc.read_schema(pa.py_buffer(data))
            if len(self._schemas) > 64:
                self._schemas.clear()
            found = self._schemas[data] = (schema, list(schema.types))
        return found

    def decode(self, slot: memoryview, address: int, guard: object) -> DAQJobMessage:
        """The message in ``slot``; its table's buffers point at ``address`` and keep ``guard`` alive."""
        try:
            (length,) = _LEN.unpack_from(slot, 0)
            layout = self._layout.decode(slot[_LEN.size : _LEN.size + length])
            cls = self._types.get(layout.type_name)
            decoder = self._headers.get(cls)
            if decoder is None:
                decoder = self._headers[cls] = msgspec.msgpack.Decoder(cls)
            message = decoder.decode(layout.header)
        except (msgspec.DecodeError, struct.error, UnicodeDecodeError) as exc:
            raise MessageError(f"corrupt ring slot: {exc}") from exc
        area = _align(_LEN.size + length)
        if isinstance(message, DAQJobMessageStorePyArrow) and layout.schema is not None:
            try:
                message.table = self._table(layout, slot, address + area, area, guard)
            except (pa.ArrowException, ValueError, TypeError, IndexError) as exc:
                raise MessageError(f"ring slot holds a table that cannot be rebuilt: {exc}") from exc
        elif isinstance(message, DAQJobMessageStoreRaw) and layout.raw is not None:
            start, size = layout.raw
            message.data = bytes(slot[area + start : area + start + size])
        return message

    def _table(
        self, layout: SlotLayout, slot: memoryview, address: int, area: int, guard: object
    ) -> pa.Table:
        schema, types = self._schema(layout.schema or b"")
        if layout.ipc is not None:
            start, size = layout.ipc
            data = pa.foreign_buffer(address + start, size, base=guard)
            return pa.ipc.open_stream(data).read_all()
        arrays = []
        rows = layout.num_rows
        foreign = pa.foreign_buffer
        for dtype, entry in zip(types, layout.columns, strict=True):
            bufs = [
                None if entry[i] < 0 else foreign(address + entry[i], entry[i + 1], base=guard)
                for i in range(3, 3 + 2 * entry[2], 2)
            ]
            arrays.append(pa.Array.from_buffers(dtype, rows, bufs, entry[0], entry[1]))
        return pa.Table.from_arrays(arrays, schema=schema)
