"""The consumer's side of a slot: a message read from it, zero-copy (see :mod:`enrgdaq.data.slot`)."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw
from enrgdaq.data.slot import LENGTHS, SlotLayout, align
from enrgdaq.errors import MessageError
from enrgdaq.message.wire import MessageTypes

PLAN_CACHE_SIZE = 64


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
            layout_len, header_len = LENGTHS.unpack_from(slot, 0)
            head = LENGTHS.size + layout_len
            plan = self._plan(bytes(slot[LENGTHS.size : head]))
            message = plan.decoder.decode(slot[head : head + header_len])
        except (
            msgspec.DecodeError,
            struct.error,
            UnicodeDecodeError,
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            pa.ArrowException,
        ) as exc:
            raise MessageError(f"corrupt ring slot: {exc}") from exc
        area = align(head + header_len)
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
