"""The producer's side of a slot: a message written into it (see :mod:`enrgdaq.data.slot`)."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.data.codec import SlotCodec, default_codec
from enrgdaq.data.slot import ALIGN, LENGTHS, SlotLayout, align, plain
from enrgdaq.errors import MessageError

_Places = list[tuple[int, memoryview]]  # (offset in the buffer area, bytes to copy there)
FOLD_BYTES = 4096
"""A first buffer up to this size is written together with the slot's front (one copy instead of two)."""


class SlotEncoder:
    """Writes messages into slots. One per producing thread; a few microseconds plus the copy."""

    def __init__(self, codec: SlotCodec | None = None) -> None:
        self._codec = codec or default_codec()
        self._layout = msgspec.msgpack.Encoder()
        self._header_only: dict[str, bytes] = {}  # type name -> its layout (no payload)
        # The last schema, its IPC bytes, and whether all its columns are flat (no children).
        self._schema: pa.Schema | None = None
        self._schema_bytes = b""
        self._flat = True
        # The last table's encoded layout, buffers and size: a producer that hands the same
        # table object again (its buffers refilled in place, as a readout loop does) reuses them.
        self._last: tuple[pa.Table, bytes, _Places, int, str] | None = None
        # Record-batch shapes by (schema bytes, rows): see _batch_places.
        self._batch_shapes: dict[tuple[bytes, int], tuple[Any, list[tuple[int, int]], int, list[int]]] = {}

    def split(self, message: Any) -> tuple[str, bytes, Any]:
        """The codec's (type name, header, payload) of ``message``."""
        return self._codec.split(message)

    def _remember(self, schema: pa.Schema) -> None:
        if self._schema is None or not schema.equals(self._schema):
            self._schema, self._schema_bytes = schema, schema.serialize().to_pybytes()
            self._flat = all(plain(t) for t in schema.types)

    def encode(self, message: Any, slot: memoryview) -> int:
        """Write ``message`` into ``slot``; returns the bytes used. Raises MessageError if it does not fit."""
        type_name, header, payload = self._codec.split(message)
        return self.encode_parts(type_name, header, payload, slot)

    def encode_parts(self, type_name: str, header: bytes, payload: Any, slot: memoryview) -> int:
        """:meth:`encode` of a message already split by the codec (a producer that encodes its
        header itself, see :mod:`enrgdaq.daq.channel`)."""
        if isinstance(payload, pa.Table):
            layout, places, total = self._table_layout(payload, type_name)
        elif payload is not None:
            view = _bytes_view(payload)  # its size in bytes, whatever the item size of what was given
            places = [(0, view)]
            total = align(view.nbytes)
            layout = self._layout.encode(SlotLayout(type_name=type_name, raw=[0, view.nbytes]))
        else:
            places, total = [], 0
            layout = self._header_layout(type_name)
        # Buffer starts are relative to the buffer area, which begins after layout and header.
        head = LENGTHS.size + len(layout)
        area = align(head + len(header))
        if area + total > len(slot):
            raise MessageError(f"payload of {area + total} bytes does not fit a slot of {len(slot)} bytes")
        # The slot's front (lengths, layout, header, and a small first buffer such as a record
        # batch's metadata) in one write: per message, each write costs more than its bytes.
        front: list[Any] = [LENGTHS.pack(len(layout), len(header)), layout, header]
        if places and places[0][1].nbytes <= FOLD_BYTES:
            front += (bytes(area + places[0][0] - head - len(header)), places[0][1])
            places = places[1:]
        joined = b"".join(front)
        slot[: len(joined)] = joined
        for offset, view in places:
            start = area + offset
            slot[start : start + view.nbytes] = view
        return area + total

    def _header_layout(self, type_name: str) -> bytes:
        layout = self._header_only.get(type_name)
        if layout is None:
            layout = self._header_only[type_name] = self._layout.encode(SlotLayout(type_name=type_name))
        return layout

    def _table_layout(
        self, table: pa.Table, type_name: str
    ) -> tuple[bytes, list[tuple[int, memoryview]], int]:
        last = self._last
        if last is not None and last[0] is table and last[4] == type_name:
            return last[1], last[2], last[3]
        layout = SlotLayout(type_name=type_name, num_rows=table.num_rows)
        self._remember(table.schema)
        layout.schema = self._schema_bytes
        found = self._batch_places(table, layout) if self._flat else None
        if found is None:
            found = self._buffer_places(table, layout)
        places = [(offset, _bytes_view(buffer)) for offset, buffer in found[0]]
        total = found[1]
        encoded = self._layout.encode(layout)
        # Reusable only while the places point at the table's own buffers: not for nested
        # columns (one IPC stream, a copy) nor for columns of several chunks (combined, a copy).
        if self._flat and all(column.num_chunks <= 1 for column in table.columns):
            self._last = (table, encoded, places, total, type_name)
        return encoded, places, total

    def _batch_places(self, table: pa.Table, layout: SlotLayout) -> tuple[list[tuple[int, Any]], int] | None:
        """:func:`_batch_places`, with the record batch's metadata and body offsets kept per schema
        and row count: they depend on nothing else for fixed-width columns without validity
        bitmaps, so a producer that sends a new table each time (a readout, a bridge) copies its
        data once, into the slot, instead of serializing it first to learn where it goes."""
        arrays = _batch_arrays(table)
        if arrays is None:
            return None
        key = (self._schema_bytes, table.num_rows)
        known = self._batch_shapes.get(key)
        if known is None:
            found = _batch_places(table, layout)
            if found is None:
                return None
            places, total = found
            assert layout.batch is not None
            sizes: list[tuple[int, int]] = [(offset, buffer.size) for offset, buffer in places[1:]]
            shape = (places[0], sizes, total, list(layout.batch))
            if len(self._batch_shapes) >= 64:
                self._batch_shapes.clear()
            self._batch_shapes[key] = shape
            return found
        head, parts, total, batch = known
        layout.batch = list(batch)
        data = [a.buffers()[1] for a in arrays]
        places = [head] + [
            (offset, buf.slice(0, size)) for (offset, size), buf in zip(parts, data, strict=True)
        ]
        return places, total

    def _buffer_places(self, table: pa.Table, layout: SlotLayout) -> tuple[list[tuple[int, Any]], int]:
        """Each column's buffers one after the other (flat types), or one IPC stream (nested)."""
        if not self._flat:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            data = sink.getvalue()
            layout.ipc = [0, data.size]
            return [(0, data)], align(data.size)
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
                start += align(size)
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


def _batch_arrays(table: pa.Table) -> list[pa.Array] | None:
    """The table's columns if it can travel as one record-batch message (see below), else None."""
    arrays = []
    for index in range(table.num_columns):
        column = table.column(index)
        if column.num_chunks != 1:
            return None
        array = column.chunk(0)
        # No validity bitmap at all (not merely no nulls now): the metadata is reused while a
        # producer refills the same table, and a bitmap could gain nulls in place.
        if array.offset or array.buffers()[0] is not None or not _fixed_width(array.type):
            return None
        arrays.append(array)
    return arrays


def _batch_places(table: pa.Table, layout: SlotLayout) -> tuple[list[tuple[int, Any]], int] | None:
    """The slot as one Arrow IPC record-batch message, for tables of fixed-width columns without nulls.

    The consumer then rebuilds the table in one call (``ipc.read_record_batch``,
    zero-copy) instead of one ``Array.from_buffers`` per column. The message's
    metadata is taken once from pyarrow's own serialization, with where it puts
    each column's data; a producer refilling the same table in place then only
    copies the data buffers to those places.
    """
    arrays = _batch_arrays(table)
    if arrays is None:
        return None
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
    return places, align(lead + serialized.size)
