"""Runs: consecutive table payloads of one ring handed over as one object (``drain(runs=True)``,
``DAQJobStore.handle_runs``). Every payload arrives intact and in order, its slot is held while
anything of the run is alive, and it is given back only after the store wrote it.

Real rings in a temp directory; the store is driven step by step (its loop's own steps).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.config import StoreJobConfig
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
)
from enrgdaq.daq.store.retry import keep_in_ring
from enrgdaq.data.reader import RingReader
from enrgdaq.data.runs import SlotRun
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import StoreWriteError

CONFIG = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
ROWS = 100
SLOTS = 8


def payload(n: int) -> pa.Table:
    return pa.table({"n": np.full(ROWS, n, dtype=np.int64), "x": np.arange(ROWS, dtype=np.float64) + n})


def send(writer: RingWriter, n: int) -> None:
    writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=payload(n), tag=f"t{n}"))


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(
        run_dir=run_dir, ring_bytes=SLOTS * 8192, slot_bytes=8192, block_timeout_s=0.05, policy="drop"
    )
    writer = RingWriter("producer", settings)
    writer.ensure_consumers(["store"])
    try:
        yield settings, writer
    finally:
        gc.collect()
        writer.close()


def cursor(writer: RingWriter) -> int:
    index = writer.ring.find_consumer("store")
    assert index is not None
    return writer.ring.cursor(index)


def reader_of(settings: DataPlaneSettings) -> RingReader:
    reader = RingReader("store", settings.run_dir)
    reader.scan()
    return reader


def test_consecutive_tables_come_as_one_run_with_every_value_in_place(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    reader = reader_of(settings)
    try:
        for n in range(5):
            send(writer, n)
        (run,) = reader.drain(runs=True)
        assert isinstance(run, SlotRun) and run.count == 5 and run.first_seq == 0
        n_col, x_col = run.column(0), run.column(1)
        assert n_col.shape == (5, ROWS)
        for j in range(5):
            assert (n_col[j] == j).all() and (x_col[j] == np.arange(ROWS) + j).all()
            assert run.table(j).equals(payload(j))
            message = run.message(j)
            assert isinstance(message, DAQJobMessageStorePyArrow) and message.tag == f"t{j}"
            assert message.get_table().equals(payload(j))
        assert run.to_table().equals(pa.concat_tables([payload(j) for j in range(5)]))
        assert len(run.committed_ns) == 5 and run.committed_ns == sorted(run.committed_ns)
        del message, n_col, x_col
    finally:
        reader.close()


def test_a_run_holds_every_slot_until_it_and_all_its_views_are_gone(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    reader = reader_of(settings)
    try:
        for n in range(4):
            send(writer, n)
        (run,) = reader.drain(runs=True)
        view = run.column(1)
        table = run.table(3)
        run.release()
        del run
        gc.collect()
        assert cursor(writer) == 0  # a view into the run holds the whole run
        for n in range(4, 4 + SLOTS):
            send(writer, n)  # the ring is full: these four are dropped (drop policy), nothing overwritten
        assert (view[2] == np.arange(ROWS) + 2).all() and table.equals(payload(3))
        del view
        gc.collect()
        assert cursor(writer) == 0
        del table
        gc.collect()
        assert cursor(writer) == 4  # all four at once
    finally:
        reader.close()


def test_a_run_stops_at_the_ring_s_end_and_at_a_payload_of_another_kind(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    reader = reader_of(settings)
    try:
        for n in range(6):
            send(writer, n)
        for item in reader.drain(runs=True):
            item.release()
        gc.collect()
        assert cursor(writer) == 6
        send(writer, 6)
        send(writer, 7)  # slot 7, the ring's last: the next payload wraps to slot 0
        send(writer, 8)
        writer.write(DAQJobMessageStoreRaw(store_config=CONFIG, data=b"raw"))
        send(writer, 10)
        items = reader.drain(runs=True)
        kinds = [(type(i).__name__, i.count if isinstance(i, SlotRun) else 1) for i in items]
        assert kinds == [("SlotRun", 2), ("SlotRun", 1), ("DAQJobMessageStoreRaw", 1), ("SlotRun", 1)]
        firsts = [int(i.column(0)[0, 0]) for i in items if isinstance(i, SlotRun)]
        assert firsts == [6, 8, 10]
        del items
    finally:
        reader.close()


def test_a_slot_with_damaged_batch_metadata_is_no_part_of_a_run_and_counts_as_corrupted(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    reader = reader_of(settings)
    try:
        for n in range(3):
            send(writer, n)
        ring_ = writer.ring
        (first,) = reader.drain(runs=True, limit=1)
        meta_at = first._meta_at  # where the record-batch message starts in a slot
        first.release()
        start = ring_.slot_offset(1) + meta_at
        ring_.mm[start + 8 : start + 40] = b"\xff" * 32  # slot 1: its flatbuffer metadata garbled
        items = reader.drain(runs=True)
        assert [i.first_seq for i in items] == [2]  # slot 1 skipped, not misread
        assert reader.corrupted == 1
        for item in items:
            item.release()
        del items, first
        gc.collect()
        assert cursor(writer) == 3  # the corrupt slot was given back too
    finally:
        reader.close()


def test_a_run_kept_for_the_next_run_gives_nothing_back(ring: tuple[DataPlaneSettings, RingWriter]) -> None:
    settings, writer = ring
    reader = reader_of(settings)
    try:
        for n in range(3):
            send(writer, n)
        items = reader.drain(runs=True)
        assert keep_in_ring(items) == (1, 0)
        del items
        gc.collect()
        assert cursor(writer) == 0  # read again by the store's next run
    finally:
        reader.close()


def test_a_consumer_that_dies_holding_a_run_gets_all_of_it_again_from_its_cursor(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    first = reader_of(settings)
    again = None
    try:
        for n in range(3):
            send(writer, n)
        (held,) = first.drain(runs=True)  # taken, never written: the process dies now
        again = reader_of(settings)  # the store's next run, with the same name
        (run,) = again.drain(runs=True)
        assert [int(v) for v in run.column(0)[:, 0]] == [0, 1, 2]
        run.release()
        del run
        gc.collect()
        assert cursor(writer) == 3
        del held
    finally:
        gc.collect()
        first.close()
        if again is not None:
            again.close()


class RunStore(DAQJobStore):
    """Takes runs; keeps the first value of each payload; "writes" at store_loop; may fail."""

    config_type = StoreJobConfig
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStorePyArrow]

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.calls: list[list[int]] = []
        self.buffered: list[int] = []
        self.written: list[int] = []
        self.fail = 0

    def handle_runs(self, runs: list[SlotRun]) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreWriteError("disk full")
        values = [int(v) for run in runs for v in run.column(0)[:, 0]]
        self.calls.append(values)
        self.buffered += values

    def handle_message(self, message: DAQJobMessage) -> bool:
        self.calls.append([-1])  # (raw payloads are refused before they get here)
        return True

    def store_loop(self) -> None:
        self.written += self.buffered
        self.buffered = []

    def has_unflushed_data(self) -> bool:
        return bool(self.buffered)


def step(store: DAQJobStore) -> None:
    if store._writes.failing:
        if store._writes.seconds_left() <= 0:
            store._retry_writes()
        return
    store._poll_rings()
    store._write_out()


def test_a_store_taking_runs_gets_every_payload_once_and_in_order_even_after_a_failed_write(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = RunStore(StoreJobConfig(daq_job_type="RunStore", daq_job_unique_id="store"))
    store.configure_data_plane(settings)
    store.fail = 1
    try:
        for n in range(3):
            send(writer, n)
        writer.write(DAQJobMessageStoreRaw(store_config=CONFIG, data=b"not a table"))
        send(writer, 4)
        step(store)
        gc.collect()
        assert store._writes.failing and store.calls == [] and cursor(writer) == 0
        store._writes.retry_at = 0.0
        step(store)
        gc.collect()
        assert store.written == [0, 1, 2, 4] and store.counters.unsupported == 1
        assert cursor(writer) == 5 and not store._writes.failing
        assert store.counters.processed == 4
    finally:
        store.free()
