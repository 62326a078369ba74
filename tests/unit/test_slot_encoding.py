"""What a producer puts in a slot is what the store gets: the message's own type, every byte of a
raw payload, and a table refilled in place read afresh each time."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobStoreConfig,
    DAQJobStoreConfigMemory,
)
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import MessageError


class DAQJobMessageStoreWaveform(DAQJobMessageStorePyArrow, kw_only=True):
    channel: int = 0


def config() -> DAQJobStoreConfig:
    return DAQJobStoreConfig(memory=DAQJobStoreConfigMemory())


@pytest.fixture
def ring(tmp_path) -> Iterator[tuple[RingWriter, RingReader]]:
    settings = DataPlaneSettings(run_dir=str(tmp_path), ring_bytes=4 * 4096, slot_bytes=4096)
    writer = RingWriter("producer", settings)
    reader = RingReader("store", str(tmp_path))
    writer.ensure_consumers(["store"])
    reader.scan()
    yield writer, reader
    gc.collect()
    reader.close()
    writer.close()


def take_one(reader: RingReader) -> object:
    (message,) = reader.drain()
    return message


def test_the_same_table_in_two_message_types_arrives_as_each_type(ring) -> None:
    writer, reader = ring
    table = pa.table({"a": np.arange(8)})
    writer.write(DAQJobMessageStorePyArrow(store_config=config(), table=table))
    first = take_one(reader)
    writer.write(DAQJobMessageStoreWaveform(store_config=config(), table=table, channel=7))
    second = take_one(reader)

    assert type(first) is DAQJobMessageStorePyArrow
    assert type(second) is DAQJobMessageStoreWaveform and second.channel == 7


@pytest.mark.parametrize("chunks", [1, 2])
def test_a_table_refilled_in_place_is_read_afresh_each_time(ring, chunks: int) -> None:
    writer, reader = ring
    values = np.zeros(8, dtype=np.int64)
    halves = np.split(values, chunks)
    table = pa.Table.from_batches([pa.record_batch({"a": pa.array(part)}) for part in halves])
    seen = []
    for number in range(3):
        values[:] = number  # a readout loop refills its buffers
        writer.write(DAQJobMessageStorePyArrow(store_config=config(), table=table))
        message = take_one(reader)
        seen.append(message.get_table().column("a").to_pylist())  # type: ignore[attr-defined]
        message.release()  # type: ignore[attr-defined]
        del message
    assert seen == [[number] * 8 for number in range(3)]


def test_a_raw_payload_of_wide_items_arrives_whole_and_one_too_big_goes_inline(ring) -> None:
    writer, reader = ring
    data = memoryview(np.arange(100, dtype=np.uint16))  # 200 bytes in 100 items
    writer.write(DAQJobMessageStoreRaw(store_config=config(), data=data))
    message = take_one(reader)
    assert message.data == data.tobytes()  # type: ignore[attr-defined]

    with pytest.raises(MessageError, match="does not fit"):  # the producer then sends it inline
        writer.write(DAQJobMessageStoreRaw(store_config=config(), data=memoryview(np.arange(1000))))


def test_a_new_table_per_message_reads_back_value_for_value(tmp_path) -> None:
    """The record-batch shape is kept per schema and row count (no serialization per message): a
    producer that builds each table anew, of the same and of another row count, gets exactly
    its values back."""
    import msgspec
    import numpy as np
    import pyarrow as pa

    from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
    from enrgdaq.data.reader import RingReader
    from enrgdaq.data.settings import DataPlaneSettings
    from enrgdaq.data.writer import RingWriter

    settings = DataPlaneSettings(run_dir=str(tmp_path), ring_bytes=64 * 65536, slot_bytes=65536)
    writer, reader = RingWriter("producer", settings), RingReader("store", str(tmp_path))
    try:
        writer.ensure_consumers(["store"])
        config = msgspec.convert({}, DAQJobStoreConfig)
        rng = np.random.default_rng(7)
        tables = [
            pa.table({"a": rng.random(100), "b": np.arange(100, dtype=np.int32) + i}) for i in range(10)
        ]
        tables += [pa.table({"a": rng.random(7), "b": np.arange(7, dtype=np.int32)}), tables[0]]
        for table in tables:
            writer.write(DAQJobMessageStorePyArrow(store_config=config, table=table))
        reader.scan()
        got = reader.drain()
        assert [m.get_table().equals(t) for m, t in zip(got, tables, strict=True)] == [True] * len(tables)
        for message in got:
            message.release()
        del got
    finally:
        reader.close()
        writer.close()
