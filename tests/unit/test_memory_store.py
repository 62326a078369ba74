"""The Memory store: every kind kept (tables copied out of the ring, which is given back at once),
read back value by value; bounded by entries and by MB, the oldest evicted first and counted;
``void_data`` keeps nothing."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigMemory,
)
from tests.unit.file_store_rig import released, ring, step, store

MEMORY = DAQJobStoreConfig(memory=DAQJobStoreConfigMemory())


def table(n: int) -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(
        store_config=MEMORY, table=pa.table({"n": [n, n + 1], "s": [f"v{n}", None]}), tag="t"
    )


def test_every_kind_is_kept_and_read_back_the_ring_given_back_at_once(tmp_path: Any) -> None:
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreMemory", settings)
        try:
            for n in (0, 10):
                writer.write(table(n))
            writer.write(DAQJobMessageStoreRaw(store_config=MEMORY, data=b"\x00frame\xff", tag="cam"))
            writer.write(
                DAQJobMessageStoreTabular(store_config=MEMORY, keys=["n", "s"], data=[[5, "x"]], tag="t")
            )
            step(job)
            assert released(writer) == 4, "a memory store holds the producer back"
            for n in range(100, 116):  # every slot written again: the kept copies stay right
                writer.write(
                    DAQJobMessageStorePyArrow(store_config=MEMORY, table=pa.table({"n": [n]}), tag="u")
                )
                step(job)

            kept = job.table("t")
            assert kept is not None
            assert kept.column("n").to_pylist() == [0, 1, 10, 11, 5]
            assert kept.column("s").to_pylist() == ["v0", None, "v10", None, "x"]
            assert [e.data for e in job.entries("cam")] == [b"\x00frame\xff"]
            assert job.get_all()["t"]["table"].column("n").to_pylist() == [5]
            assert job.table("u").column("n").to_pylist() == list(range(100, 116))
            stats = job.data_plane_stats()
            assert stats["memory_entries"] == 20 and stats["memory_evicted"] == 0
        finally:
            job.free()


def test_the_oldest_entries_are_evicted_beyond_the_entry_and_size_bounds() -> None:
    job = store("DAQJobStoreMemory", None, dispose_after_n_entries=3)
    try:
        for n in range(5):
            job._handle(table(n))
        assert [e.table.column("n")[0].as_py() for e in job.entries()] == [2, 3, 4]
        assert job.data_plane_stats()["memory_evicted"] == 2
    finally:
        job.free()

    job = store("DAQJobStoreMemory", None, max_mb=0.001)  # 1000 bytes
    try:
        for n in range(4):
            job._handle(DAQJobMessageStoreRaw(store_config=MEMORY, data=bytes([n]) * 400))
        assert [e.data[0] for e in job.entries() if e.data] == [2, 3]
        job._handle(DAQJobMessageStoreRaw(store_config=MEMORY, data=b"x" * 2000))  # alone above the bound
        assert job.entries() == [] and job.data_plane_stats()["memory_bytes"] == 0
        assert job.data_plane_stats()["memory_evicted"] == 5
        job.clear()
    finally:
        job.free()


def test_void_data_counts_and_keeps_nothing() -> None:
    job = store("DAQJobStoreMemory", None, void_data=True)
    try:
        for n in range(3):
            job._handle(table(n))
        assert job.entries() == [] and job.table() is None
        assert job.counters.processed == 3
    finally:
        job.free()
