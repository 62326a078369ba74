"""The Parquet store through a real ring: rows in the write-ahead file at each flush (slots given back
only after it), row groups closed by rows and by time, a valid file after a clean stop read back with
pyarrow.parquet value by value; a restarted store appends to its previous file, another schema goes to
``_1``, overwrite replaces; raw bytes refused and counted; a write that fails is retried, every row
once."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigParquet,
)
from enrgdaq.daq.store.parquet_append import wal_path
from tests.harness.waiting import wait_for
from tests.unit.file_store_rig import output_dir_replaced_by_a_file, released, ring, step, store


def parquet_config(file_path: str = "data.parquet", **fields: Any) -> DAQJobStoreConfig:
    return DAQJobStoreConfig(parquet=DAQJobStoreConfigParquet(file_path=file_path, **fields))


def rows(first: int, count: int) -> pa.Table:
    seqs = list(range(first, first + count))
    return pa.table({"seq": seqs, "value": [s / 4 for s in seqs], "name": [f"r{s}" for s in seqs]})


def message(first: int, count: int, config: DAQJobStoreConfig | None = None) -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(store_config=config or parquet_config(), table=rows(first, count))


def test_rows_go_to_the_write_ahead_file_then_row_groups_and_the_file_is_valid_after_a_clean_stop(
    tmp_path: Any,
) -> None:
    out = str(tmp_path / "out")
    path = os.path.join(out, "data.parquet")
    config = parquet_config(row_group_rows=10)
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreParquet", settings, out_dir=out, row_group_seconds=3600)
        try:
            for first in (0, 3, 6):
                writer.write(message(first, 3, config))
            job._poll_rings()
            assert released(writer) == 0, "given back before the rows were written"
            job._write_out()
            assert released(writer) == 3
            with open(wal_path(path), "rb") as f:
                assert ipc.open_stream(f).read_all().equals(rows(0, 9))
            assert not os.path.exists(path), "a row group closed before row_group_rows"

            writer.write(message(9, 3, config))  # 12 rows waiting: a row group is due
            step(job)
            assert pq.read_table(path).equals(rows(0, 12))
            assert not os.path.exists(wal_path(path))

            writer.write(
                DAQJobMessageStoreTabular(
                    store_config=config, keys=["seq", "value", "name"], data=[[12, 3.0, "r12"]]
                )
            )
            writer.write(message(13, 2, config))
            step(job)
        finally:
            job.free()  # the stop: the waiting rows become a row group
    assert pq.read_table(path).equals(rows(0, 15))
    assert [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(3)] == [10, 2, 3]
    assert sorted(os.listdir(out)) == ["data.parquet"]


def test_a_row_group_is_closed_after_row_group_seconds(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    path = os.path.join(out, "data.parquet")
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreParquet", settings, out_dir=out, row_group_seconds=1.0)
        try:
            writer.write(message(0, 2))
            step(job)
            assert not os.path.exists(path)
            wait_for(lambda: (step(job), os.path.exists(path))[1], 5, "the row group closed by time")
            assert pq.read_table(path).equals(rows(0, 2))
        finally:
            job.free()


def test_a_restarted_store_appends_to_its_previous_file_and_another_schema_goes_beside_it(
    tmp_path: Any,
) -> None:
    out = str(tmp_path / "out")
    for first in (0, 4):
        job = store("DAQJobStoreParquet", None, out_dir=out)
        job._handle(message(first, 4))
        job._handle(DAQJobMessageStorePyArrow(store_config=parquet_config(), table=pa.table({"x": [first]})))
        job.store_loop()
        job.free()
    assert pq.read_table(os.path.join(out, "data.parquet")).equals(rows(0, 8)), (
        "the first run's rows are gone"
    )
    assert pq.read_table(os.path.join(out, "data_1.parquet")).column("x").to_pylist() == [0, 4]


def test_overwrite_replaces_the_file_with_each_write_and_raw_bytes_are_refused(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    config = parquet_config("latest.parquet", overwrite=True)
    job = store("DAQJobStoreParquet", None, out_dir=out)
    try:
        job._handle(message(0, 3, config))
        job.store_loop()
        job._handle(message(3, 2, config))
        job._handle(message(5, 1, config))
        job._handle(DAQJobMessageStoreRaw(store_config=config, data=b"\x00\x01"))
        job.store_loop()
        assert pq.read_table(os.path.join(out, "latest.parquet")).equals(rows(3, 3))
        assert job.counters.unsupported == 1
        assert sorted(os.listdir(out)) == ["latest.parquet"]
    finally:
        job.free()


def test_a_failed_write_keeps_the_slots_and_the_retry_writes_every_row_once(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    path = os.path.join(out, "data.parquet")
    os.makedirs(out)
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreParquet", settings, out_dir=out, row_group_seconds=0.2)
        try:
            writer.write(message(0, 2))
            step(job)
            with output_dir_replaced_by_a_file(out):
                for first in (2, 4, 6):
                    writer.write(message(first, 2))
                step(job)
                assert job._writes.failing and job.counters.write_failing == 1
                assert "NotADirectoryError" in (job.counters.last_error or "")
                assert released(writer) == 1, "slots given back although their rows were not written"
                wait_for(lambda: (step(job), job.counters.write_errors >= 2)[1], 5, "a failed retry")
            wait_for(lambda: (step(job), not job._writes.failing)[1], 5, "the retry after the repair")
            assert released(writer) == 4
            wait_for(lambda: (step(job), pq.read_table(path).num_rows == 8)[1], 5, "every row in the file")
        finally:
            job.free()
    assert pq.read_table(path).equals(rows(0, 8))


def test_an_adding_of_rows_that_failed_after_its_commit_is_finished_before_new_rows_come(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "out")
    path = os.path.join(out, "data.parquet")
    config = parquet_config(row_group_rows=2)
    real_unlink = os.unlink
    failures = []

    def unlink(target: str, *args: Any, **kwargs: Any) -> None:
        if target == wal_path(path) and not failures:
            failures.append(target)
            raise OSError(5, "Input/output error", target)
        real_unlink(target, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    job = store("DAQJobStoreParquet", None, out_dir=out)
    try:
        job._handle(message(0, 2, config))
        job._write_out()  # rows 0-1 into the Parquet file; removing the write-ahead file fails
        assert failures and job._writes.failing
        assert pq.read_table(path).equals(rows(0, 2))
        job._handle(message(2, 2, config))  # an inline message, handled at the retry
        job._retry_writes()
        assert not job._writes.failing
    finally:
        job.free()
    assert pq.read_table(path).equals(rows(0, 4)), "rows added twice"
