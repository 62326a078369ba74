"""What a ring slot holds: a message's header and its payload's raw buffers.

::

    [u32 layout length][u32 header length][SlotLayout][message header][pad to 64]
    [buffer][pad to 64][buffer]...

The layout (msgpack) says how the payload is laid out: the message type, the
schema, the row count and where each column's buffers sit; it repeats for
every message of the same shape, so both sides cache it by its bytes (the
producer per table object, the consumer per distinct layout). The message
header (msgpack, the message without its payload) is encoded per message.

An Arrow table travels as its columns' raw buffers (validity, offsets, data)
and is rebuilt on the consumer side with ``Array.from_buffers`` over buffers
that point into the mapping: no copy, no IPC parsing. Columns of nested types
(lists, structs) travel as one Arrow IPC stream instead. Raw bytes are one
buffer.
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
_Places = list[tuple[int, memoryview]]  # (offset in the buffer area, bytes to copy there)
_LENS = struct.Struct("<II")
PLAN_CACHE_SIZE = 64


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
    schema: bytes | None = None
    num_rows: int = 0
    # per column: [null_count, offset, n_buffers, start0, length0, start1, length1, ...]; start -1: no buffer
    columns: list[list[int]] = []
    ipc: list[int] | None = None  # [start, length] of an IPC stream (nested types)
    batch: list[int] | None = None  # [start, length] of an IPC record-batch message (fixed-width, no nulls)
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
        # The last table's encoded layout, buffers and size: a producer that hands the same
        # table object again (its buffers refilled in place, as a readout loop does) reuses them.
        self._last: tuple[pa.Table, bytes, _Places, int] | None = None

    def _remember(self, schema: pa.Schema) -> None:
        if self._schema is None or not schema.equals(self._schema):
            self._schema, self._schema_bytes = schema, schema.serialize().to_pybytes()
            self._flat = all(_plain(t) for t in schema.types)

    def encode(self, message: DAQJobMessage, slot: memoryview) -> int:
        """Write ``message`` into ``slot``; returns the bytes used. Raises MessageError if it does not fit."""
        if isinstance(message, DAQJobMessageStorePyArrow) and message.table is not None:
            layout, places, total = self._table_layout(message.table, type(message).__name__)
            header = self._header.encode(message)
        elif isinstance(message, DAQJobMessageStoreRaw):
            data = message.data
            places = [(0, _bytes_view(data))]
            total = _align(len(data))
            layout = self._layout.encode(SlotLayout(type_name=type(message).__name__, raw=[0, len(data)]))
            message.data = b""
            try:
                header = self._header.encode(message)
            finally:
                message.data = data
        else:
            places, total = [], 0
            layout = self._layout.encode(SlotLayout(type_name=type(message).__name__))
            header = self._header.encode(message)
        # Buffer starts are relative to the buffer area, which begins after layout and header.
        head = _LENS.size + len(layout)
        area = _align(head + len(header))
        if area + total > len(slot):
            raise MessageError(f"payload of {area + total} bytes does not fit a slot of {len(slot)} bytes")
        _LENS.pack_into(slot, 0, len(layout), len(header))
        slot[_LENS.size : head] = layout
        slot[head : head + len(header)] = header
        for offset, view in places:
            start = area + offset
            slot[start : start + view.nbytes] = view
        return area + total

    def _table_layout(
        self, table: pa.Table, type_name: str
    ) -> tuple[bytes, list[tuple[int, memoryview]], int]:
        last = self._last
        if last is not None and last[0] is table:
            return last[1], last[2], last[3]
        layout = SlotLayout(type_name=type_name, num_rows=table.num_rows)
        self._remember(table.schema)
        layout.schema = self._schema_bytes
        found = _batch_places(table, layout) if self._flat else None
        if found is None:
            found = self._buffer_places(table, layout)
        places = [(offset, _bytes_view(buffer)) for offset, buffer in found[0]]
        total = found[1]
        encoded = self._layout.encode(layout)
        if self._flat:
            self._last = (table, encoded, places, total)
        return encoded, places, total

    def _buffer_places(self, table: pa.Table, layout: SlotLayout) -> tuple[list[tuple[int, Any]], int]:
        """Each column's buffers one after the other (flat types), or one IPC stream (nested)."""
        if not self._flat:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            data = sink.getvalue()
            layout.ipc = [0, data.size]
            return [(0, data)], _align(data.size)
        start = 0
        places: list[tuple[int, Any]] = []
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
                places.append((start, buf))
                start += _align(size)
            columns.append(entry)
        return places, start


def _bytes_view(buffer: Any) -> memoryview:
    view = memoryview(buffer)
    return view if view.format == "B" else view.cast("B")


def _fixed_width(dtype: pa.DataType) -> bool:
    t = pa.types
    return not isinstance(dtype, pa.ExtensionType) and (
        t.is_integer(dtype) or t.is_floating(dtype) or t.is_temporal(dtype)
    )


def _batch_places(table: pa.Table, layout: SlotLayout) -> tuple[list[tuple[int, Any]], int] | None:
    """The slot as one Arrow IPC record-batch message, for tables of fixed-width columns without nulls.

    The consumer then rebuilds the table in one call (``ipc.read_record_batch``,
    zero-copy) instead of one ``Array.from_buffers`` per column. The message's
    metadata is taken once from pyarrow's own serialization, with where it puts
    each column's data; a producer refilling the same table in place then only
    copies the data buffers to those places.
    """
    arrays = []
    for index in range(table.num_columns):
        column = table.column(index)
        if column.num_chunks != 1:
            return None
        array = column.chunk(0)
        if array.offset or array.null_count or not _fixed_width(array.type):
            return None
        arrays.append(array)
    serialized = pa.RecordBatch.from_arrays(arrays, schema=table.schema).serialize()
    body = pa.ipc.read_message(serialized).body
    body_start = body.address - serialized.address if body is not None and body.size else serialized.size
    lead = -body_start % ALIGN  # the body starts 64-byte aligned in the slot
    places: list[tuple[int, Any]] = [(lead, serialized.slice(0, body_start).to_pybytes())]
    back = pa.ipc.read_record_batch(serialized, table.schema)
    for array, read in zip(arrays, back.columns, strict=True):
        data = read.buffers()[1]
        if data is not None and data.size:
            places.append((lead + data.address - serialized.address, array.buffers()[1].slice(0, data.size)))
    layout.batch = [lead, serialized.size]
    return places, _align(lead + serialized.size)


class _Plan:
    """What the consumer needs to rebuild messages of one layout, worked out once."""

    __slots__ = ("batch", "cls", "columns", "decoder", "ipc", "raw", "rows", "schema")

    def __init__(self, layout: SlotLayout, types: MessageTypes, decoders: dict[type, Any]) -> None:
        self.cls = types.get(layout.type_name)
        decoder = decoders.get(self.cls)
        if decoder is None:
            decoder = decoders[self.cls] = msgspec.msgpack.Decoder(self.cls)
        self.decoder = decoder
        self.rows = layout.num_rows
        self.ipc = layout.ipc
        self.batch = layout.batch
        self.raw = layout.raw
        self.schema: pa.Schema | None = None
        self.columns: list[tuple[pa.DataType, int, int, list[tuple[int, int] | None]]] = []
        if layout.schema is None or not issubclass(self.cls, DAQJobMessageStorePyArrow):
            return
        self.schema = pa.ipc.read_schema(pa.py_buffer(layout.schema))
        for dtype, entry in zip(self.schema.types, layout.columns, strict=bool(layout.columns)):
            spans: list[tuple[int, int] | None] = [
                None if entry[i] < 0 else (entry[i], entry[i + 1]) for i in range(3, 3 + 2 * entry[2], 2)
            ]
            self.columns.append((dtype, entry[0], entry[1], spans))


class SlotDecoder:
    """Reads messages from slots, zero-copy for Arrow tables. One per consuming thread."""

    def __init__(self, types: MessageTypes | None = None) -> None:
        self._types = types or MessageTypes()
        self._layout = msgspec.msgpack.Decoder(SlotLayout)
        self._headers: dict[type, msgspec.msgpack.Decoder[Any]] = {}
        self._plans: dict[bytes, _Plan] = {}

    def _plan(self, raw: bytes) -> _Plan:
        plan = self._plans.get(raw)
        if plan is None:
            plan = _Plan(self._layout.decode(raw), self._types, self._headers)
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[raw] = plan
        return plan

    def decode(self, slot: memoryview, address: int, guard: object) -> DAQJobMessage:
        """The message in ``slot``; its table's buffers point at ``address`` and keep ``guard`` alive."""
        try:
            layout_len, header_len = _LENS.unpack_from(slot, 0)
            head = _LENS.size + layout_len
            plan = self._plan(bytes(slot[_LENS.size : head]))
            message = plan.decoder.decode(slot[head : head + header_len])
        except (msgspec.DecodeError, struct.error, UnicodeDecodeError, ValueError, pa.ArrowException) as exc:
            raise MessageError(f"corrupt ring slot: {exc}") from exc
        area = _align(head + header_len)
        if plan.schema is not None:
            try:
                message.table = self._table(plan, address + area, guard)
            except (pa.ArrowException, ValueError, TypeError, IndexError) as exc:
                raise MessageError(f"ring slot holds a table that cannot be rebuilt: {exc}") from exc
        elif plan.raw is not None and isinstance(message, DAQJobMessageStoreRaw):
            start, size = plan.raw
            message.data = bytes(slot[area + start : area + start + size])
        return message

    @staticmethod
    def _table(plan: _Plan, address: int, guard: object) -> pa.Table:
        foreign = pa.foreign_buffer
        if plan.batch is not None:
            start, size = plan.batch
            batch = pa.ipc.read_record_batch(foreign(address + start, size, base=guard), plan.schema)
            return pa.Table.from_batches([batch])
        if plan.ipc is not None:
            start, size = plan.ipc
            return pa.ipc.open_stream(foreign(address + start, size, base=guard)).read_all()
        rows = plan.rows
        from_buffers = pa.Array.from_buffers
        arrays = [
            from_buffers(
                dtype,
                rows,
                [None if span is None else foreign(address + span[0], span[1], base=guard) for span in spans],
                nulls,
                offset,
            )
            for dtype, nulls, offset, spans in plan.columns
        ]
        return pa.Table.from_arrays(arrays, schema=plan.schema)
