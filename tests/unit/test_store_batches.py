"""The store API takes batches: everything ready in the rings in one ``handle_batch`` call.

Real rings in a temp directory and a store driven step by step (its loop's own steps).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from typing import Any

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
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import StoreWriteError

CONFIG = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))


class BatchStore(DAQJobStore):
    """Keeps what it is handed in memory; "writes" it at store_loop; may be told to fail."""

    config_type = StoreJobConfig
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStorePyArrow]

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.calls: list[list[int]] = []
        self.buffered: list[int] = []
        self.written: list[int] = []
        self.fail_batches = 0

    def handle_batch(self, messages: list[DAQJobMessage]) -> None:
        if self.fail_batches:
            self.fail_batches -= 1
            raise StoreWriteError("database down")
        values = [m.get_table().column("n")[0].as_py() for m in messages]  # type: ignore[attr-defined]
        self.calls.append(values)
        self.buffered += values

    def store_loop(self) -> None:
        self.written += self.buffered
        self.buffered = []

    def has_unflushed_data(self) -> bool:
        return bool(self.buffered)


class OneByOneStore(BatchStore):
    """The original's API: handle_message per message (no handle_batch of its own)."""

    handle_batch = DAQJobStore.handle_batch  # type: ignore[assignment]

    def handle_message(self, message: DAQJobMessage) -> bool:
        super(BatchStore, self).handle_message(message)
        self.calls.append([message.get_table().column("n")[0].as_py()])  # type: ignore[attr-defined]
        self.buffered.append(self.calls[-1][0])
        return True


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=16 * 4096, slot_bytes=4096, block_timeout_s=0.05)
    writer = RingWriter("producer", settings)
    writer.ensure_consumers(["store"])
    try:
        yield settings, writer
    finally:
        writer.close()


def make(cls: type[BatchStore], settings: DataPlaneSettings) -> BatchStore:
    store = cls(StoreJobConfig(daq_job_type=cls.__name__, daq_job_unique_id="store"))
    store.configure_data_plane(settings)
    return store


def step(store: DAQJobStore) -> None:
    if store._writes.failing:
        if store._writes.seconds_left() <= 0:
            store._retry_writes()
        return
    store._poll_rings()
    store._write_out()


def test_what_is_ready_comes_in_one_call_and_slots_go_back_after_the_write(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = make(BatchStore, settings)
    try:
        for n in range(5):
            writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=pa.table({"n": [n]})))
        step(store)
        gc.collect()
        assert store.calls == [[0, 1, 2, 3, 4]]
        assert store.written == [0, 1, 2, 3, 4]
        assert writer.ring.cursor(writer.ring.find_consumer("store")) == 5
        assert store.counters.processed == 5
    finally:
        store.free()


def test_a_batch_whose_write_fails_is_handed_again_whole_and_in_order(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = make(BatchStore, settings)
    store.fail_batches = 1
    index = writer.ring.find_consumer("store")
    try:
        for n in range(3):
            writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=pa.table({"n": [n]})))
        step(store)
        gc.collect()
        assert store._writes.failing and store.calls == [] and writer.ring.cursor(index) == 0
        store._writes.retry_at = 0.0
        step(store)
        gc.collect()
        assert store.calls == [[0, 1, 2]] and store.written == [0, 1, 2]
        assert writer.ring.cursor(index) == 3 and not store._writes.failing
    finally:
        store.free()


def test_a_store_of_the_original_api_gets_one_message_per_call(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = make(OneByOneStore, settings)
    try:
        for n in range(3):
            writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=pa.table({"n": [n]})))
        step(store)
        assert store.calls == [[0], [1], [2]] and store.written == [0, 1, 2]
    finally:
        store.free()


def test_a_kind_the_store_cannot_store_is_refused_and_the_rest_of_the_batch_is_stored(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = make(BatchStore, settings)
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=pa.table({"n": [0]})))
        writer.write(DAQJobMessageStoreRaw(store_config=CONFIG, data=b"\x01\x02"))
        writer.write(DAQJobMessageStorePyArrow(store_config=CONFIG, table=pa.table({"n": [2]})))
        step(store)
        gc.collect()
        assert store.calls == [[0, 2]] and store.counters.unsupported == 1
        assert writer.ring.cursor(writer.ring.find_consumer("store")) == 3
    finally:
        store.free()
