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
        self._last: tuple[pa.Table, bytes, list[Any], int] | None = None

    def _remember(self, schema: pa.Schema) -> None:
        if self._schema is None or not schema.equals(self._schema):
            self._schema, self._schema_bytes = schema, schema.serialize().to_pybytes()
            self._flat = all(_plain(t) for t in schema.types)

    def encode(self, message: DAQJobMessage, slot: memoryview) -> int:
        """Write ``message`` into ``slot``; returns the bytes used. Raises MessageError if it does not fit."""
        if isinstance(message, DAQJobMessageStorePyArrow) and message.table is not None:
            layout, buffers, total = self._table_layout(message.table, type(message).__name__)
            header = self._header.encode(message)
        elif isinstance(message, DAQJobMessageStoreRaw):
            data = message.data
            buffers = [data]
            total = _align(len(data))
            layout = self._layout.encode(SlotLayout(type_name=type(message).__name__, raw=[0, len(data)]))
            message.data = b""
            try:
                header = self._header.encode(message)
            finally:
                message.data = data
        else:
            buffers, total = [], 0
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
        pos = area
        for buffer in buffers:
            view = memoryview(buffer)
            if view.format != "B":
                view = view.cast("B")
            size = view.nbytes
            slot[pos : pos + size] = view
            pos += _align(size)
        return pos

    def _table_layout(self, table: pa.Table, type_name: str) -> tuple[bytes, list[Any], int]:
        last = self._last
        if last is not None and last[0] is table:
            return last[1], last[2], last[3]
        layout = SlotLayout(type_name=type_name)
        buffers: list[Any] = []
        total = self._compute_layout(table, layout, buffers)
        encoded = self._layout.encode(layout)
        if self._flat:
            self._last = (table, encoded, buffers, total)
        return encoded, buffers, total

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


class _Plan:
    """What the consumer needs to rebuild messages of one layout, worked out once."""

    __slots__ = ("cls", "columns", "decoder", "ipc", "raw", "rows", "schema")

    def __init__(self, layout: SlotLayout, types: MessageTypes, decoders: dict[type, Any]) -> None:
        self.cls = types.get(layout.type_name)
        decoder = decoders.get(self.cls)
        if decoder is None:
            decoder = decoders[self.cls] = msgspec.msgpack.Decoder(self.cls)
        self.decoder = decoder
        self.rows = layout.num_rows
        self.ipc = layout.ipc
        self.raw = layout.raw
        self.schema: pa.Schema | None = None
        self.columns: list[tuple[pa.DataType, int, int, list[tuple[int, int] | None]]] = []
        if layout.schema is None or not issubclass(self.cls, DAQJobMessageStorePyArrow):
            return
        self.schema = pa.ipc.read_schema(pa.py_buffer(layout.schema))
        for dtype, entry in zip(self.schema.types, layout.columns or [], strict=not layout.ipc):
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
