"""The CSV store gives a ring slot back only once its rows are flushed: a crash before the flush
loses nothing, the restarted store reads the slot again."""

from __future__ import annotations

import gc
import os

import pyarrow as pa

from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig, DAQJobStoreConfigCSV
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter


def test_slots_are_released_after_the_rows_are_flushed_not_before(tmp_path) -> None:
    run_dir, out_dir = str(tmp_path / "run"), str(tmp_path / "out")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 4096, slot_bytes=4096)
    store = DAQJobStoreCSV(
        DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV", daq_job_unique_id="store_csv", out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    writer = RingWriter("producer", settings)
    try:
        writer.ensure_consumers(["store_csv"])
        config = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
        for number in range(3):
            writer.write(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [number]})))
        store._poll_rings()  # takes the three payloads: rows written to the file object

        index = writer.ring.find_consumer("store_csv")
        assert store.has_unflushed_data()
        assert writer.ring.cursor(index) == 0, "slots given back before the rows were flushed"

        store.store_loop()  # flushes
        store._release_flushed()
        gc.collect()
        assert writer.ring.cursor(index) == 3
        with open(os.path.join(out_dir, "rows.csv")) as f:
            assert f.read().split() == ["n", "0", "1", "2"]
    finally:
        store.free()
        writer.close()


def test_a_stores_bytes_in_are_the_ring_payload_bytes_it_took(tmp_path) -> None:
    """Stats (and the stats handler's rows, Flower's bytes/s) count what came through the ring."""
    run_dir, out_dir = str(tmp_path / "run"), str(tmp_path / "out")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 4096, slot_bytes=4096)
    store = DAQJobStoreCSV(
        DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV", daq_job_unique_id="store_csv", out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    writer = RingWriter("producer", settings)
    try:
        writer.ensure_consumers(["store_csv"])
        config = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
        written = 0
        for number in range(3):
            writer.write(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [number]})))
            assert writer.last_nbytes > 0
            written += writer.last_nbytes
        store._poll_rings()
        assert store.data_plane_stats()["processed_bytes"] == written
    finally:
        store.free()
        writer.close()
