"""A producer's StoreChannel: its stores get what ``_put_message_out`` would give them (the rows
in the file, the tag, the producer, a fresh id and time per payload), through the ring; a payload
larger than a slot goes inline, and a store that joins the routes gets the payloads too."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig, DAQJobStoreConfigCSV
from enrgdaq.daq.store.slot_codec import spliced_header
from enrgdaq.data.settings import DataPlaneSettings
from tests.unit.conftest import ProxyUrls
from tests.unit.test_routes_while_restarting import producer

CONFIG = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv", add_date=False))


def csv_store(uid: str, out_dir: str, settings: DataPlaneSettings) -> DAQJobStoreCSV:
    store = DAQJobStoreCSV(
        DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV", daq_job_unique_id=uid, out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    return store


def taken(store: DAQJobStoreCSV) -> list[Any]:
    """What the store takes from its rings now (the messages, before they are written)."""
    assert store._rings is not None
    store._rings.scan()
    return store._rings.drain()


def producer_with_ring(proxy: ProxyUrls, tmp_path: Any) -> tuple[Any, DataPlaneSettings, str]:
    """A producer job on the proxy with a small ring; (job, its data plane, the stores' out_dir)."""
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=16 * 4096, slot_bytes=4096)
    job = producer(proxy, "adc", use_shm=True)
    job.configure_data_plane(settings)
    return job, settings, str(tmp_path / "out")


def test_the_stores_get_what_put_message_out_gives_with_a_fresh_id_and_time_each(
    proxy: ProxyUrls, tmp_path: Any
) -> None:
    job, settings, out_dir = producer_with_ring(proxy, tmp_path)
    store = csv_store("store_csv", out_dir, settings)
    try:
        job.routes, job.stores_not_running = {"DAQJobStoreCSV": ["store_csv"]}, frozenset()
        channel = job.store_channel(CONFIG, tag="waveform")
        job._put_message_out(
            DAQJobMessageStorePyArrow(store_config=CONFIG, tag="waveform", table=pa.table({"n": [0]}))
        )
        for n in range(1, 4):
            channel.put(pa.table({"n": [n]}))

        ordinary, *through_channel = taken(store)
        assert [m.table.column("n").to_pylist() for m in through_channel] == [[1], [2], [3]]
        for message in through_channel:
            for field in (
                "store_config",
                "tag",
                "topics",
                "daq_job_info",
                "is_remote",
                "target_local_supervisor",
            ):
                assert getattr(message, field) == getattr(ordinary, field), field
        ids = [m.id for m in [ordinary, *through_channel]]
        assert len(set(ids)) == 4, ids
        times = [m.timestamp for m in through_channel]
        assert times == sorted(times) and abs((times[-1] - datetime.now()).total_seconds()) < 5
        assert (
            job.counters.sent == 4 and job._ring_writer is not None and job._ring_writer.ring.write_seq == 4
        )

        for message in [ordinary, *through_channel]:
            store.handle_message(message)
        store.store_loop()
        with open(os.path.join(out_dir, "rows_waveform.csv")) as f:
            assert f.read().split() == ["n", "0", "1", "2", "3"]
    finally:
        store.free()
        job.free()


def test_a_payload_larger_than_a_slot_goes_inline_and_a_new_store_gets_the_rest(
    proxy: ProxyUrls, tmp_path: Any
) -> None:
    job, settings, out_dir = producer_with_ring(proxy, tmp_path)
    first, second = csv_store("first", out_dir, settings), csv_store("second", out_dir, settings)
    try:
        job.routes, job.stores_not_running = {"DAQJobStoreCSV": ["first"]}, frozenset()
        channel = job.store_channel(CONFIG)
        channel.put(pa.table({"n": [1]}))
        channel.put(pa.table({"n": list(range(10_000))}))  # 80 kB: larger than a 4 kB slot
        assert job.counters.inline_large == 1 and job.counters.sent == 2
        assert job._ring_writer is not None and job._ring_writer.ring.write_seq == 1

        job.routes = {"DAQJobStoreCSV": ["first", "second"]}  # a second store of the class
        channel.put(pa.table({"n": [2]}))
        assert [m.table.column("n").to_pylist() for m in taken(first)] == [[1], [2]]
        assert [m.table.column("n").to_pylist() for m in taken(second)] == [[2]]
    finally:
        first.free()
        second.free()
        job.free()


def test_the_header_made_per_payload_is_the_whole_messages_encoding() -> None:
    template = DAQJobMessageStorePyArrow(store_config=CONFIG, tag="t", topics={"store.DAQJobStoreCSV"})
    spliced = spliced_header(template)
    assert spliced is not None
    encode = msgspec.msgpack.Encoder(enc_hook=lambda obj: None).encode
    # ids of several lengths, and a time whose microseconds are 0 (written without them)
    for message_id, stamp in [
        ("a", datetime(2026, 1, 1)),
        ("x" * 40, datetime.now()),
        ("", datetime(2026, 12, 2, 1, 2, 3, 4)),
    ]:
        whole = msgspec.structs.replace(template, id=message_id, timestamp=stamp)
        assert spliced.make(message_id, stamp) == encode(whole)
