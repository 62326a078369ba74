"""The consumer's side of a slot: a message read from it, zero-copy (see :mod:`enrgdaq.data.slot`)."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.data.codec import Join, SlotCodec, default_codec
from enrgdaq.data.slot import LENGTHS, SlotLayout, align
from enrgdaq.errors import MessageError

PLAN_CACHE_SIZE = 64
BAD_SLOT = (
    msgspec.DecodeError,
    struct.error,
    UnicodeDecodeError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    pa.ArrowException,
    OSError,  # pyarrow's "Invalid flatbuffers message" (a slot in memory: never a real I/O error)
)
"""What reading a slot someone wrote badly (or forged) can raise: each becomes a MessageError."""


class _Plan:
    """What the consumer needs to rebuild messages of one layout, worked out once."""

    __slots__ = ("batch", "columns", "ipc", "join", "raw", "rows", "schema", "shape", "type_name")

    def __init__(self, layout: SlotLayout, codec: SlotCodec) -> None:
        self.type_name = layout.type_name
        self.join: Join = codec.joiner(layout.type_name)
        self.shape: Any = None  # where a record batch's columns sit (enrgdaq.data.runs.RunShape), once known
        self.rows = layout.num_rows
        self.ipc = layout.ipc
        self.batch = layout.batch
        self.raw = layout.raw
        self.schema: pa.Schema | None = None
        self.columns: list[tuple[pa.DataType, int, int, list[tuple[int, int] | None]]] = []
        if layout.schema is None:
            return
        self.schema = pa.ipc.read_schema(pa.py_buffer(layout.schema))
        for dtype, entry in zip(self.schema.types, layout.columns, strict=bool(layout.columns)):
            spans: list[tuple[int, int] | None] = [
                None if entry[i] < 0 else (entry[i], entry[i + 1]) for i in range(3, 3 + 2 * entry[2], 2)
            ]
            self.columns.append((dtype, entry[0], entry[1], spans))


class SlotDecoder:
    """Reads messages from slots, zero-copy for Arrow tables. One per consuming thread.

    ``codec`` builds the messages from their parts (default: the installed one,
    see :mod:`enrgdaq.data.codec`).
    """

    def __init__(self, codec: SlotCodec | None = None) -> None:
        self._codec = codec or default_codec()
        self._layout = msgspec.msgpack.Decoder(SlotLayout)
        self._plans: dict[bytes, _Plan] = {}

    def plan(self, raw: bytes) -> _Plan:
        """The plan of a slot layout (its msgpack bytes); raises MessageError for a bad one."""
        try:
            return self._plan(raw)
        except BAD_SLOT as exc:
            raise MessageError(f"corrupt ring slot: {exc}") from exc

    def _plan(self, raw: bytes) -> _Plan:
        plan = self._plans.get(raw)
        if plan is None:
            plan = _Plan(self._layout.decode(raw), self._codec)
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[raw] = plan
        return plan

    def decode(self, slot: memoryview, address: int, guard: object, copy: bool = False) -> Any:
        """The message in ``slot``; its table's buffers point at ``address`` and keep ``guard`` alive.

        ``copy``: hand on a copy of the table instead (the slot can go at once) and no guard.
        """
        try:
            layout_len, header_len = LENGTHS.unpack_from(slot, 0)
            head = LENGTHS.size + layout_len
            plan = self._plan(bytes(slot[LENGTHS.size : head]))
            area = align(head + header_len)
            payload: Any = None
            if plan.schema is not None:
                payload = self._table(plan, address + area, guard)
                if copy:
                    payload = copy_table(payload)
            elif plan.raw is not None:
                start, size = plan.raw
                payload = bytes(slot[area + start : area + start + size])
            return plan.join(slot[head : head + header_len], payload, None if copy else guard)
        except MessageError:
            raise
        except BAD_SLOT as exc:
            raise MessageError(f"corrupt ring slot: {exc}") from exc

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


def copy_table(table: pa.Table) -> pa.Table:
    """A copy of ``table`` that holds no slot (its buffers are new)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.ipc.open_stream(sink.getvalue()).read_all()
