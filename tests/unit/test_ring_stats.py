"""A producer's ring stats say how full its ring is now, as `enrgdaq status` shows them."""

from __future__ import annotations

import pyarrow as pa

from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter


def message(number: int) -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(store_config=DAQJobStoreConfig(), table=pa.table({"n": [number]}))


def test_occupancy_follows_what_the_store_has_not_released(tmp_path) -> None:
    settings = DataPlaneSettings(run_dir=str(tmp_path), ring_bytes=16 * 4096, slot_bytes=4096)
    writer = RingWriter("producer", settings)
    reader = RingReader("store", str(tmp_path))
    try:
        writer.ensure_consumers(["store"])
        reader.scan()
        for number in range(10):
            writer.write(message(number))
        assert writer.stats()["occupancy"] == 10

        held = reader.drain()
        assert writer.stats()["occupancy"] == 10  # taken, not yet released
        for taken in held[:6]:
            taken.release()
        del taken
        assert writer.stats()["occupancy"] == 4
        for taken in held[6:]:
            taken.release()
        del held, taken
        assert writer.stats()["occupancy"] == 0  # caught up: the stats must not keep an old floor

        writer.write(message(10))
        assert (writer.stats()["occupancy"], writer.stats()["slots"]) == (1, 16)
    finally:
        reader.close()
        writer.close()
