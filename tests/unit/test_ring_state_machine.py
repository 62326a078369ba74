"""The shared-memory ring as a state machine: one producer, up to three consumers, in one process.

A model keeps what the ring must hold: the next sequence number, the dropped
count, and per consumer where its cursor must be (the first message it has
not let go of). Hypothesis writes (new tables, raw bytes, and one table
object refilled in place, as a readout loop does), drains (with and without a
limit), releases in any order, drops held tables, copies tables, adds,
detaches and re-adds consumers, and after every step the ring must agree with
the model, and every table a consumer still holds must still read exactly
what was written into it.

The producer uses the ``drop`` policy with a 1 ms timeout: a full ring gives
None at once instead of waiting, so "would have to wait" is observable.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobStoreConfig,
    DAQJobStoreConfigMemory,
)
from enrgdaq.data import layout as L
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter

SLOT_BYTES = 4096
MAX_CONSUMERS = 3
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def store_config() -> DAQJobStoreConfig:
    return DAQJobStoreConfig(memory=DAQJobStoreConfigMemory())


def make_table(number: int, rows: int, nested: bool) -> pa.Table:
    """A table whose every value depends on ``number``: an overwritten slot never reads the same."""
    columns: dict[str, pa.Array] = {
        "n": pa.array([number * 1000 + i for i in range(rows)], pa.int64()),
        "x": pa.array([None if (number + i) % 3 == 0 else number + i / 8 for i in range(rows)], pa.float64()),
        "s": pa.array([None if (number + i) % 4 == 1 else f"m{number}-{i}" for i in range(rows)]),
        "ok": pa.array([(number + i) % 2 == 0 for i in range(rows)]),
    }
    if nested:
        columns["lst"] = pa.array([[number] * (i % 3) for i in range(rows)], pa.list_(pa.int64()))
    return pa.table(columns)


@dataclass
class Payload:
    number: int
    table: pa.Table | None = None  # built in this process, never a view of the ring
    raw: bytes | None = None

    def message(self) -> DAQJobMessage:
        if self.raw is not None:
            return DAQJobMessageStoreRaw(store_config=store_config(), data=self.raw, tag=str(self.number))
        return DAQJobMessageStorePyArrow(store_config=store_config(), table=self.table, tag=str(self.number))


def points_into(table: pa.Table, low: int, high: int) -> bool:
    """Whether any buffer of ``table`` lies in [low, high): a zero-copy view of the mapping.

    Such a table holds its slot. One that does not (a nested column read back
    from an IPC stream with no rows has no buffer in the slot) has nothing to protect.
    """
    return any(
        buffer is not None and low <= buffer.address < high
        for column in table.columns
        for chunk in column.chunks
        for buffer in chunk.buffers()
    )


@dataclass
class Held:
    """A drained message and the references to it that the test still keeps."""

    seq: int
    message: DAQJobMessage | None
    table: pa.Table | None
    table_pins: bool  # the table is a view of the slot (holds it)
    freed: bool = False

    def pins(self) -> bool:
        return self.message is not None or (self.table is not None and self.table_pins)

    def gone(self) -> bool:
        return self.message is None and self.table is None


@dataclass
class Consumer:
    name: str
    reader: RingReader
    index: int
    start: int  # write_seq when it was registered: it gets every message from there on
    next_seq: int  # the next sequence number a drain must hand out
    cursor: int  # where the ring's cursor must be: the first sequence number not let go of
    held: dict[int, Held] = field(default_factory=dict)
    let_go: set[int] = field(default_factory=set)

    def free(self, seq: int) -> None:
        """The test no longer references message ``seq``: the cursor moves over contiguous ones."""
        self.let_go.add(seq)
        while self.cursor in self.let_go:
            self.let_go.discard(self.cursor)
            self.cursor += 1


class RingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.run_dir = tempfile.mkdtemp(prefix="edq-", dir="/dev/shm")
        self.writer: RingWriter | None = None
        self.slots = 0
        self.write_seq = 0
        self.dropped = 0
        self.numbers = 0
        self.names = 0
        self.payloads: dict[int, Payload] = {}
        self.consumers: list[Consumer] = []
        self.copies: list[tuple[pa.Table, pa.Table]] = []
        self.detached: list[str] = []
        self.old_entries: dict[str, int] = {}
        self.refill_values = np.zeros(0, dtype=np.int64)
        self.refill_table: pa.Table | None = None

    @initialize(slots=st.integers(4, 8))
    def create_ring(self, slots: int) -> None:
        self.slots = slots
        self.writer = RingWriter(
            "prod",
            DataPlaneSettings(
                run_dir=self.run_dir,
                ring_bytes=slots * SLOT_BYTES,
                slot_bytes=SLOT_BYTES,
                policy="drop",
                block_timeout_s=0.001,
            ),
        )
        assert self.writer.ring.slot_count == slots

    @property
    def ring_writer(self) -> RingWriter:
        assert self.writer is not None
        return self.writer

    # -- consumers come and go -----------------------------------------------------
    @precondition(lambda self: len(self.consumers) < MAX_CONSUMERS)
    @rule(again=st.booleans())
    def add_consumer(self, again: bool) -> None:
        """A new consumer, or (``again``) one that was detached and is started again."""
        writer = self.ring_writer
        # Only a name whose DETACHED entry is still its own (a full table lets a new store take
        # it: test_a_stopped_consumers_entry_is_taken_only_when_no_entry_is_free).
        returning = [n for n in self.detached if self._entry_still_its_own(n)]
        if again and returning:
            name = returning[0]
            self.detached.remove(name)
        else:
            name = f"c{self.names}"
            self.names += 1
        writer.ensure_consumers([c.name for c in self.consumers] + [name])  # as a producer does
        reader = RingReader(name, self.run_dir)
        reader.scan()
        assert list(reader.trackers) == [writer.name]
        index = writer.ring.find_consumer(name)
        assert index is not None
        assert writer.ring.cursor(index) == self.write_seq
        self.consumers.append(Consumer(name, reader, index, self.write_seq, self.write_seq, self.write_seq))

    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data())
    def detach_consumer(self, data: st.DataObject) -> None:
        """A store that flushed what it held and was stopped for good: it no longer holds the producer."""
        consumer = data.draw(st.sampled_from(self.consumers), label="consumer")
        consumer.held.clear()  # the last references: every slot it held is given back
        consumer.reader.detach()
        consumer.reader.close()
        self.consumers.remove(consumer)
        ring = self.ring_writer.ring
        # Its entry stays, DETACHED: a producer whose routes still name it does not revive it.
        assert ring.state(consumer.index) == L.DETACHED
        self.ring_writer.ensure_consumers([c.name for c in self.consumers] + [consumer.name])
        assert ring.state(consumer.index) == L.DETACHED
        self.detached.append(consumer.name)
        self.old_entries[consumer.name] = consumer.index
        # No refresh of the producer here: it must not drop for a consumer that is gone, even
        # before it re-reads the consumer table (every REFRESH_SECONDS).

    def _entry_still_its_own(self, name: str) -> bool:
        ring, index = self.ring_writer.ring, self.old_entries[name]
        return ring.state(index) == L.DETACHED and ring.consumer_name(index) == name

    # -- the producer --------------------------------------------------------------------
    @rule(
        raw=st.one_of(st.none(), st.binary(max_size=600)),
        rows=st.integers(0, 12),
        nested=st.booleans(),
    )
    def write(self, raw: bytes | None, rows: int, nested: bool) -> None:
        number = self._next_number()
        if raw is not None:
            payload = Payload(number, raw=number.to_bytes(4, "little") + raw)
        else:
            payload = Payload(number, table=make_table(number, rows, nested))
        self._write(payload, payload.message())

    @precondition(lambda self: self.writer is not None)
    @rule()
    def write_a_refilled_table(self) -> None:
        """A readout loop: the same table object each time, its buffer refilled in place."""
        number = self._next_number()
        if self.refill_table is None:
            self.refill_values = np.zeros(5, dtype=np.int64)
            self.refill_table = pa.table({"v": pa.array(self.refill_values)})  # a view of the array
        self.refill_values[:] = np.arange(5) + number * 1000
        snapshot = pa.table({"v": pa.array(self.refill_values.copy())})
        self._write(
            Payload(number, table=snapshot),
            DAQJobMessageStorePyArrow(store_config=store_config(), table=self.refill_table, tag=str(number)),
        )

    def _next_number(self) -> int:
        self.numbers += 1
        return self.numbers - 1

    def _write(self, payload: Payload, message: DAQJobMessage) -> None:
        writer = self.ring_writer
        number = payload.number
        raw = payload.raw
        slowest = min((c.cursor for c in self.consumers), default=self.write_seq)
        fits = self.write_seq < slowest + self.slots

        seq = writer.write(message)

        if fits:
            assert seq == self.write_seq, f"a free slot was there (slowest cursor {slowest}), got {seq}"
            self.payloads[seq] = payload
            self.write_seq += 1
        else:
            assert seq is None, f"slot {seq} was written over a message a consumer holds (cursor {slowest})"
            self.dropped += 1
        assert message.tag == str(number)  # the producer's message is left as it was
        if raw is not None:
            assert isinstance(message, DAQJobMessageStoreRaw)
            assert message.data == payload.raw

    # -- consumers ---------------------------------------------------------------------
    @precondition(lambda self: bool(self.consumers))
    @rule(data=st.data(), limit=st.one_of(st.none(), st.integers(1, 5)), by_name=st.booleans())
    def drain(self, data: st.DataObject, limit: int | None, by_name: bool) -> None:
        consumer = data.draw(st.sampled_from(self.consumers), label="consumer")
        reader = consumer.reader
        name = self.ring_writer.name if by_name else None
        messages = reader.drain(name) if limit is None else reader.drain(name, limit=limit)

        end = self.write_seq if limit is None else min(self.write_seq, consumer.next_seq + limit)
        expected = list(range(consumer.next_seq, end))
        got = [m.tag for m in messages]
        assert got == [str(self.payloads[s].number) for s in expected], f"{consumer.name} drained {got}"
        assert (reader.lost, reader.corrupted) == (0, 0)
        tracker = reader.trackers[self.ring_writer.name]
        low, high = tracker.address, tracker.address + len(tracker.ring.mm)
        for seq, message in zip(expected, messages, strict=True):
            payload = self.payloads[seq]
            table = None
            if payload.raw is not None:
                assert isinstance(message, DAQJobMessageStoreRaw)
                assert message.data == payload.raw
            else:
                assert isinstance(message, DAQJobMessageStorePyArrow)
                table = message.get_table()
                assert payload.table is not None
                assert table.equals(payload.table), f"message {seq} corrupted: {table.to_pydict()}"
            pins = table is not None and points_into(table, low, high)
            assert pins or table is None or table.num_rows == 0, f"message {seq}: its table is a copy"
            consumer.held[seq] = Held(seq, message, table, pins)
        consumer.next_seq = end
        del messages

    @precondition(lambda self: any(c.held for c in self.consumers))
    @rule(data=st.data(), call_release=st.booleans())
    def let_go_of_messages(self, data: st.DataObject, call_release: bool) -> None:
        """Release some drained messages (or just drop them), in any order; tables taken stay held."""
        consumer = data.draw(st.sampled_from([c for c in self.consumers if c.held]), label="consumer")
        candidates = sorted(s for s, h in consumer.held.items() if h.message is not None)
        if not candidates:
            return
        chosen = data.draw(st.lists(st.sampled_from(candidates), unique=True, min_size=1), label="seqs")
        for seq in chosen:
            held = consumer.held[seq]
            assert held.message is not None
            if call_release:
                held.message.release()  # type: ignore[attr-defined]
            held.message = None
            self._forget_if_gone(consumer, held)

    @precondition(lambda self: any(h.table is not None for c in self.consumers for h in c.held.values()))
    @rule(data=st.data())
    def drop_tables(self, data: st.DataObject) -> None:
        consumer = data.draw(
            st.sampled_from([c for c in self.consumers if any(h.table is not None for h in c.held.values())]),
            label="consumer",
        )
        candidates = sorted(s for s, h in consumer.held.items() if h.table is not None)
        chosen = data.draw(st.lists(st.sampled_from(candidates), unique=True, min_size=1), label="seqs")
        for seq in chosen:
            held = consumer.held[seq]
            held.table = None
            self._forget_if_gone(consumer, held)

    @precondition(
        lambda self: any(
            isinstance(h.message, DAQJobMessageStorePyArrow) and h.message.table is not None
            for c in self.consumers
            for h in c.held.values()
        )
    )
    @rule(data=st.data())
    def copy_a_table(self, data: st.DataObject) -> None:
        """``copy_table()`` gives a table that holds no slot (the cursor model does not count it)."""
        candidates = [
            h
            for c in self.consumers
            for h in c.held.values()
            if isinstance(h.message, DAQJobMessageStorePyArrow) and h.message.table is not None
        ]
        held = candidates[data.draw(st.integers(0, len(candidates) - 1), label="held")]
        assert isinstance(held.message, DAQJobMessageStorePyArrow)
        copy = held.message.copy_table()
        expected = self.payloads[held.seq].table
        assert expected is not None
        self.copies.append((copy, expected))

    def _forget_if_gone(self, consumer: Consumer, held: Held) -> None:
        if not held.freed and not held.pins():
            held.freed = True
            consumer.free(held.seq)
        if held.gone():
            del consumer.held[held.seq]

    # -- what must always hold ----------------------------------------------------------
    @invariant()
    def ring_agrees_with_the_model(self) -> None:
        if self.writer is None:
            return
        ring = self.writer.ring
        stats = ring.stats()
        assert stats["write_seq"] == self.write_seq
        assert stats["dropped"] == self.dropped
        assert sorted(ring.active_consumers()) == sorted(c.index for c in self.consumers)
        for consumer in self.consumers:
            assert ring.state(consumer.index) == L.ACTIVE
            assert ring.consumer_name(consumer.index) == consumer.name
            assert ring.cursor(consumer.index) == consumer.cursor, (
                f"{consumer.name}: cursor {ring.cursor(consumer.index)}, it holds "
                f"{sorted(consumer.held)} (drained up to {consumer.next_seq})"
            )
            assert consumer.start <= consumer.cursor <= consumer.next_seq <= self.write_seq
        # The cursors are what bound the producer: never more than a ring's worth ahead of the slowest.
        slowest = min((c.cursor for c in self.consumers), default=self.write_seq)
        assert self.write_seq - slowest <= self.slots

    @invariant()
    def held_tables_never_change(self) -> None:
        for consumer in self.consumers:
            for seq, held in consumer.held.items():
                expected = self.payloads[seq].table
                for table in (held.table, getattr(held.message, "table", None)):
                    if table is not None:
                        assert expected is not None
                        assert table.equals(expected), f"{consumer.name}: held message {seq} was overwritten"
        for copy, expected in self.copies:
            assert copy.equals(expected)

    def teardown(self) -> None:
        try:
            for consumer in self.consumers:
                consumer.held.clear()
            self.copies.clear()
            self.refill_table = None
            for consumer in self.consumers:
                consumer.reader.close()
            if self.writer is not None:
                self.writer.close()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)


RingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRing = RingMachine.TestCase


# -- bugs these tests found: regressions (fixed in 38bcebf), and one still open (xfail) ------------


@pytest.fixture
def run_dir():
    path = tempfile.mkdtemp(prefix="edq-", dir="/dev/shm")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def drop_writer(run_dir: str, slots: int = 4) -> RingWriter:
    return RingWriter(
        "prod",
        DataPlaneSettings(
            run_dir=run_dir,
            ring_bytes=slots * SLOT_BYTES,
            slot_bytes=SLOT_BYTES,
            policy="drop",
            block_timeout_s=0.001,
        ),
    )


@pytest.fixture
def ring(run_dir: str) -> Iterator[tuple[RingWriter, RingReader]]:
    """A ``drop`` producer and its one consumer ``store``, registered and attached."""
    writer = drop_writer(run_dir)
    reader = RingReader("store", run_dir)
    writer.ensure_consumers(["store"])
    reader.scan()
    try:
        yield writer, reader
    finally:
        gc.collect()  # the last tables of a failed test: their slots go before the unmap
        reader.close()
        writer.close()


def test_a_detached_consumer_that_comes_back_is_registered_again(run_dir: str) -> None:
    writer = drop_writer(run_dir)
    reader = RingReader("store", run_dir)
    try:
        writer.ensure_consumers(["store"])
        reader.scan()
        assert writer.write(Payload(0, raw=b"first").message()) == 0
        assert [m.data for m in reader.drain()] == [b"first"]  # type: ignore[attr-defined]
        reader.detach()  # a person stops the store
        reader.close()

        writer.ensure_consumers(["store"])  # ... and starts it again; the producer still runs
        reader = RingReader("store", run_dir)
        reader.scan()
        assert writer.write(Payload(1, raw=b"second").message()) == 1
        assert [m.data for m in reader.drain()] == [b"second"]  # type: ignore[attr-defined]
    finally:
        reader.close()
        writer.close()


def test_a_stopped_consumers_entry_is_taken_only_when_no_entry_is_free(run_dir: str) -> None:
    """The table is full: a new store takes the entry of one stopped for good; that one, started
    again, gets another free entry and reads on."""
    writer = drop_writer(run_dir)
    first, again = RingReader("a", run_dir), RingReader("a", run_dir)
    others = [f"x{i}" for i in range(L.MAX_CONSUMERS - 1)]
    try:
        writer.ensure_consumers(["a", *others])  # every entry taken
        first.scan()
        old_entry = writer.ring.find_consumer("a")
        first.detach()  # "a" is stopped for good
        x0 = RingReader("x0", run_dir)
        x0.scan()
        x0.detach()  # and so is x0 (its entry comes later)
        x0.close()
        writer.ensure_consumers(["b", *others[1:]])  # a new store: no FREE entry, it takes a's
        assert writer.ring.find_consumer("b") == old_entry
        writer.ensure_consumers(["b", *others[1:], "a"])  # "a" is started again: x0's entry
        again.scan()
        assert writer.ring.find_consumer("a") not in (None, old_entry)
        assert writer.write(Payload(0, raw=b"for a and b").message()) == 0
        assert [m.data for m in again.drain()] == [b"for a and b"]  # type: ignore[attr-defined]
    finally:
        gc.collect()
        first.close()
        again.close()
        writer.close()


def test_an_evicted_consumer_that_is_still_running_is_active_again_after_its_next_drain(ring) -> None:
    writer, reader = ring
    index = writer.ring.find_consumer("store")
    assert index is not None
    assert writer.ring.evict_stale(-1) == ["store"]  # as if it had been away too long
    for number in range(6):  # more than the ring holds: it misses two
        assert writer.write(Payload(number, raw=bytes([number])).message()) == number
    received = reader.drain()
    assert reader.lost == 2
    assert [m.data for m in received] == [bytes([n]) for n in range(2, 6)]  # type: ignore[attr-defined]
    received.clear()
    # It is alive: from now on it holds the producer back again (nothing more is lost).
    assert writer.ring.state(index) == L.ACTIVE
    writer.refresh()
    assert [writer.write(Payload(n, raw=b"x").message()) for n in range(6, 11)] == [6, 7, 8, 9, None]


def test_a_detached_consumer_no_longer_causes_drops(ring) -> None:
    writer, reader = ring
    assert [writer.write(Payload(n, raw=b"x").message()) for n in range(5)] == [0, 1, 2, 3, None]
    reader.detach()  # the store is stopped for good: nobody holds the ring any more
    assert writer.write(Payload(5, raw=b"x").message()) == 4
    assert writer.stats()["dropped"] == 1


def test_a_table_sent_again_after_a_nested_one_keeps_its_schema(ring) -> None:
    writer, reader = ring
    received: list[DAQJobMessage] = []
    flat, nested = make_table(1, 3, nested=False), make_table(2, 3, nested=True)
    for table in (flat, nested, flat):
        assert writer.write(Payload(0, table=table).message()) is not None
    error = None
    try:
        received = reader.drain()
    except ValueError as exc:  # kept as text: a traceback would keep the slots' guards alive
        error = repr(exc)
    assert error is None, f"drain raised {error}"
    tables = [m.get_table() for m in received]  # type: ignore[attr-defined]
    assert [t.equals(e) for t, e in zip(tables, (flat, nested, flat), strict=True)] == [True] * 3


USE_AFTER_CLOSE = """
import sys
from tests.unit.test_ring_state_machine import Payload, drop_writer, make_table
from enrgdaq.data.reader import RingReader
writer = drop_writer(sys.argv[1])
writer.ensure_consumers(["store"])
reader = RingReader("store", sys.argv[1])
reader.scan()
writer.write(Payload(7, table=make_table(7, 50, False)).message())
table = reader.drain()[0].get_table()
reader.close()  # the store stops; a table it handed on is still alive
print(table.equals(make_table(7, 50, False)))
"""


def test_a_table_outlives_its_reader_close(run_dir: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", USE_AFTER_CLOSE, run_dir], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr[-2000:]


DICTIONARY_COLUMN = """
import sys
import pyarrow as pa
from tests.unit.test_ring_state_machine import Payload, drop_writer
from enrgdaq.data.reader import RingReader
writer = drop_writer(sys.argv[1])
writer.ensure_consumers(["store"])
reader = RingReader("store", sys.argv[1])
reader.scan()
table = pa.table({"kind": pa.array(["a", "b", "a"]).dictionary_encode()})
writer.write(Payload(1, table=table).message())
print(reader.drain()[0].get_table().equals(table))
"""


def test_a_dictionary_column_goes_through_the_ring(run_dir: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", DICTIONARY_COLUMN, run_dir],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr[-2000:]


def test_an_extension_column_goes_through_the_ring(ring) -> None:
    writer, reader = ring
    received: list[DAQJobMessage] = []
    tensor = pa.fixed_shape_tensor(pa.int32(), [2])
    storage = pa.array([[1, 2], [3, 4]], pa.list_(pa.int32(), 2))
    table = pa.table({"t": pa.ExtensionArray.from_storage(tensor, storage)})
    assert writer.write(Payload(1, table=table).message()) == 0
    error = None
    try:
        received = reader.drain()
    except ValueError as exc:  # kept as text: a traceback would keep the slot's guard alive
        error = repr(exc)
    assert error is None, f"drain raised {error}"
    assert len(received) == 1
    assert received[0].get_table().equals(table)  # type: ignore[attr-defined]
