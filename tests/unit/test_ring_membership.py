"""Who a producer waits for: a store stopped for good or evicted is never revived by the producer
(its routes may still name it for a moment); only the store itself comes back, counting what it
missed, and a store that rejoins never reads a payload twice."""

from __future__ import annotations

import gc
import time

import numpy as np
import pyarrow as pa

from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig, DAQJobStoreConfigMemory
from enrgdaq.data import layout as L
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter


def message(number: int) -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(
        store_config=DAQJobStoreConfig(memory=DAQJobStoreConfigMemory()),
        table=pa.table({"n": pa.array(np.full(16, number, dtype=np.int64))}),
    )


def numbers(messages: list[DAQJobMessageStorePyArrow]) -> list[int]:
    return [m.get_table()["n"][0].as_py() for m in messages]


def writer_in(run_dir: str, **settings: object) -> RingWriter:
    geometry = DataPlaneSettings(run_dir=run_dir, ring_bytes=4 * 4096, slot_bytes=4096, **settings)  # type: ignore[arg-type]
    return RingWriter("producer", geometry)


def test_a_store_stopped_for_good_is_not_revived_by_stale_routes(tmp_path) -> None:
    writer = writer_in(str(tmp_path), block_timeout_s=0.2, consumer_timeout_s=60.0)
    csv, hdf = RingReader("csv", str(tmp_path)), RingReader("hdf", str(tmp_path))
    try:
        writer.ensure_consumers(["csv", "hdf"])
        csv.scan()
        hdf.scan()
        csv.detach()  # a person stopped the CSV store
        csv.close()
        writer.ensure_consumers(["csv", "hdf"])  # the routes still name it for a moment
        writer.write(message(0))
        assert writer.ring.state(writer.ring.find_consumer("csv")) == L.DETACHED

        waits = []
        for number in range(1, 9):  # twice the ring: the HDF5 store keeps up, the CSV one is gone
            for taken in hdf.drain():
                taken.release()
            started = time.monotonic()
            writer.ensure_consumers(["hdf"])
            assert writer.write(message(number)) == number
            waits.append(time.monotonic() - started)
        assert max(waits) < 0.1, f"the producer waited for a stopped store: {waits}"
    finally:
        gc.collect()
        hdf.close()
        writer.close()


def test_a_stopped_store_started_again_reads_on_and_counts_what_went_by(tmp_path) -> None:
    writer = writer_in(str(tmp_path))
    store = RingReader("csv", str(tmp_path))
    try:
        writer.ensure_consumers(["csv"])
        store.scan()
        store.detach()
        store.close()
        for number in range(3):
            writer.write(message(number))
        again = RingReader("csv", str(tmp_path))
        again.scan()
        index = writer.ring.find_consumer("csv")
        assert (writer.ring.state(index), writer.ring.entry(index, L.C_MISSED)) == (L.ACTIVE, 3)
        writer.write(message(3))
        got = again.drain()
        assert numbers(got) == [3]
        del got
        gc.collect()
        again.close()
    finally:
        writer.close()


def test_an_evicted_store_is_revived_only_by_itself_and_never_reads_twice(tmp_path) -> None:
    writer = writer_in(str(tmp_path), block_timeout_s=0.05, consumer_timeout_s=0.3, policy="block")
    store = RingReader("store", str(tmp_path))
    held: list[DAQJobMessageStorePyArrow] = []
    try:
        writer.ensure_consumers(["store"])
        store.scan()
        for number in range(4):
            writer.write(message(number))
        held = store.drain()  # taken, not yet flushed, so not released
        assert numbers(held) == [0, 1, 2, 3]
        # The store hangs: the producer waits, evicts it after 0.3 s and writes on.
        writer.ensure_consumers(["store"])
        writer.write(message(4))
        writer.ensure_consumers(["store"])  # the routes still name it: it must stay evicted
        index = writer.ring.find_consumer("store")
        assert writer.ring.state(index) == L.EVICTED

        again = store.drain()  # the store resumes: it rejoins by itself
        assert writer.ring.state(index) == L.ACTIVE
        assert numbers(again) == [4], "a payload was read twice (or one was skipped)"
        assert store.lost == 0  # every payload was read once; one of those it held was overwritten
        assert writer.ring.entry(index, L.C_MISSED) >= 1
        cursor = writer.ring.cursor(index)
        held.clear()
        gc.collect()
        assert writer.ring.cursor(index) >= cursor, "the store's cursor moved backwards"
        again.clear()
        gc.collect()
    finally:
        held.clear()
        gc.collect()
        store.close()
        writer.close()
