"""Runs of ring payloads: consecutive slots of one ring holding tables of one shape, taken as one.

A store that takes runs (``DAQJobStore.handle_runs``) gets, for payloads that
follow each other in a ring with the same slot layout (message type, schema,
row count) and the same place in their slots, one :class:`SlotRun` instead of
one message per slot: no message struct, no table and no guard per slot. The
run reads its payloads in place: :meth:`SlotRun.column` is a 2-D numpy view
(one row per payload) over the slots, zero-copy; :meth:`SlotRun.table` and
:meth:`SlotRun.message` build one payload's table or whole message on demand.

One guard holds every slot of the run: the slots go back together, once the
run and every view taken from it are gone (a view kept by a store holds the
whole run: backpressure, never an overwrite). Why: at 10,000 values a message
the per-slot Python objects cost more than reading the data (see
docs/benchmarks.md, issue 9).

A run is only made of slots whose record-batch metadata is byte for byte the
one the run's first slot had (so every column sits where the run says); any
other slot is decoded one by one as before, and a slot that does not decode is
counted as corrupted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from enrgdaq.data.decoder import BAD_SLOT, SlotDecoder
from enrgdaq.data.slot import LENGTHS, align
from enrgdaq.errors import MessageError, PayloadIndexError

if TYPE_CHECKING:
    from enrgdaq.data.decoder import _Plan
    from enrgdaq.data.tracker import RingTracker


class RunGuard:
    """Kept alive by a run and every view into its slots; its death releases them all.

    ``seq`` is the run's last sequence number (what a write journal records as reached);
    set to -1 it gives nothing back (the slots stay for the store's next run).
    """

    __slots__ = ("count", "first", "seq", "tracker")

    def __init__(self, tracker: RingTracker, first: int) -> None:
        self.tracker = tracker
        self.first = first
        self.seq = first
        self.count = 1

    def __del__(self) -> None:
        self.tracker.release_range(self.first, self.seq, self.count)


class RunShape:
    """Where each column of a record-batch slot layout sits, learnt once from a first slot."""

    __slots__ = ("columns", "meta", "meta_len")

    def __init__(self, plan: _Plan, batch: memoryview) -> None:
        schema = plan.schema
        assert schema is not None and plan.batch is not None
        size = plan.batch[1]
        body = pa.ipc.read_message(pa.py_buffer(batch)).body
        self.meta_len = body.address - _address(batch) if body is not None and body.size else size
        self.meta = bytes(batch[: self.meta_len])
        back = pa.ipc.read_record_batch(pa.py_buffer(batch), schema)
        self.columns: list[tuple[int, int, Any]] = []  # (offset in the batch message, bytes, numpy dtype)
        for field, array in zip(schema, back.columns, strict=True):
            data = array.buffers()[1]
            offset = data.address - _address(batch) if data is not None else 0
            size_ = data.size if data is not None else 0
            self.columns.append((offset, size_, _numpy_dtype(field.type)))


def _address(view: memoryview) -> int:
    return pa.py_buffer(view).address


def _numpy_dtype(dtype: pa.DataType) -> Any:
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return np.dtype(dtype.to_pandas_dtype())
    return None


class SlotRun:
    """``count`` payloads of one ring, sequence numbers ``first_seq`` on, one slot layout.

    Attributes: ``type_name`` (the messages' type), ``schema``, ``num_rows`` (per payload),
    ``committed_ns`` (per payload: when the producer committed its slot).
    """

    def __init__(
        self,
        tracker: RingTracker,
        plan: _Plan,
        shape: RunShape,
        batch_address: int,
        seq: int,
        committed_ns: int,
        header: tuple[int, int],
    ) -> None:
        self._ring_guard: RunGuard | None = RunGuard(tracker, seq)
        self._tracker = tracker
        self._plan = plan
        self._shape = shape
        self._start = batch_address  # the first payload's record-batch message (an address in the mapping)
        self._stride = tracker.ring.slot_size
        self.type_name: str = plan.type_name
        self.schema: pa.Schema = plan.schema
        self.num_rows: int = plan.rows
        self.first_seq = seq
        self.committed_ns: list[int] = [committed_ns]
        self._meta_at = 0  # where the record-batch message starts in each slot (set by the reader)
        self._headers = [header]  # per payload: (offset in the mapping, length) of its message header

    @property
    def count(self) -> int:
        return len(self.committed_ns)

    def _add(self, committed_ns: int, header: tuple[int, int]) -> None:
        guard = self._ring_guard
        assert guard is not None
        guard.seq += 1
        guard.count += 1
        self.committed_ns.append(committed_ns)
        self._headers.append(header)

    def header(self, j: int) -> bytes:
        """Payload ``j``'s message header (msgpack, as its producer encoded it), copied."""
        self._guard()
        start, size = self._headers[j]
        return bytes(self._tracker.ring.mm_view[start : start + size])

    def _guard(self) -> RunGuard:
        guard = self._ring_guard
        if guard is None:
            raise MessageError("the run was released already")
        return guard

    def column(self, index: int) -> np.ndarray:
        """Column ``index`` of every payload as one 2-D numpy view (``count`` x ``num_rows``),
        zero-copy over the slots; integer and floating-point columns only."""
        offset, size, dtype = self._shape.columns[index]
        if dtype is None:
            raise MessageError(
                f"column {index} ({self.schema.types[index]}) has no plain numpy view; use table()"
            )
        count, stride = self.count, self._stride
        buffer = pa.foreign_buffer(self._start + offset, (count - 1) * stride + size, base=self._guard())
        return np.ndarray(
            (count, self.num_rows), dtype=dtype, buffer=buffer, strides=(stride, dtype.itemsize)
        )

    def table(self, j: int) -> pa.Table:
        """Payload ``j``'s table, zero-copy (it holds the run's slots while it lives)."""
        if not 0 <= j < self.count:
            raise PayloadIndexError(f"payload {j} of a run of {self.count}")
        size = self._plan.batch[1]  # type: ignore[index]
        buffer = pa.foreign_buffer(self._start + j * self._stride, size, base=self._guard())
        return pa.Table.from_batches([pa.ipc.read_record_batch(buffer, self.schema)])

    def to_table(self) -> pa.Table:
        """Every payload as one table (one chunk per payload), zero-copy."""
        guard, size, schema = self._guard(), self._plan.batch[1], self.schema  # type: ignore[index]
        foreign, read = pa.foreign_buffer, pa.ipc.read_record_batch
        return pa.Table.from_batches(
            [
                read(foreign(self._start + j * self._stride, size, base=guard), schema)
                for j in range(self.count)
            ],
            schema=schema,
        )

    def message(self, j: int) -> Any:
        """Payload ``j`` as the message its producer sent (header decoded now), holding the run."""
        return self._plan.join(memoryview(self.header(j)), self.table(j), self._guard())

    def messages(self) -> list[Any]:
        return [self.message(j) for j in range(self.count)]

    def release(self) -> None:
        """Done with the run: its slots go back once no view into them is left."""
        self._ring_guard = None


def start_run(
    decoder: SlotDecoder,
    tracker: RingTracker,
    view: memoryview,
    start: int,
    nbytes: int,
    size: int,
    seq: int,
    committed_ns: int,
) -> SlotRun | None:
    """A run that starts with the slot at ``start`` (an offset in the mapping ``view``); None if that
    slot is not a record batch, or does not look like a sound one (it is then decoded alone, which
    says why)."""
    layout_len, header_len = LENGTHS.unpack_from(view, start)
    head = start + LENGTHS.size + layout_len
    try:
        plan = decoder.plan(bytes(view[start + LENGTHS.size : head]))
    except MessageError:
        return None
    if plan.batch is None or plan.schema is None:
        return None
    lead, length = plan.batch
    at = align(LENGTHS.size + layout_len + header_len) + lead  # the record-batch message in the slot
    if lead < 0 or length <= 0 or nbytes > size or at + length > nbytes:
        return None
    batch = view[start + at : start + at + length]
    shape = plan.shape
    if shape is None:
        try:
            shape = plan.shape = RunShape(plan, batch)
        except BAD_SLOT:
            return None
    if batch[: shape.meta_len] != shape.meta:
        return None
    run = SlotRun(tracker, plan, shape, tracker.address + start + at, seq, committed_ns, (head, header_len))
    run._meta_at = at
    return run
