"""The Raw store through a real ring: raw bytes appended as sent, Arrow tables and tabular rows as an
Arrow IPC stream (read back with pyarrow.ipc), one kind per file, overwrite keeping the newest
message; slots given back only after the write; a write that fails is retried, every byte once."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigRaw,
)
from tests.harness.waiting import wait_for
from tests.unit.file_store_rig import output_dir_replaced_by_a_file, released, ring, step, store


def raw_config(file_path: str, overwrite: bool = False) -> DAQJobStoreConfig:
    return DAQJobStoreConfig(raw=DAQJobStoreConfigRaw(file_path=file_path, overwrite=overwrite))


def frame(n: int) -> bytes:
    return bytes([n % 256]) * (n % 7) + b"|%d|" % n


def read_stream(path: str) -> pa.Table:
    with open(path, "rb") as f:
        return ipc.open_stream(f).read_all()


def test_bytes_appended_as_sent_and_tables_as_one_stream_slots_given_back_after_the_write(
    tmp_path: Any,
) -> None:
    out = str(tmp_path / "out")
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreRaw", settings, out_dir=out)
        try:
            for n in range(5):
                writer.write(DAQJobMessageStoreRaw(store_config=raw_config("frames.bin"), data=frame(n)))
                table = pa.table({"n": [n, n + 100], "name": [f"a{n}", None]})
                writer.write(DAQJobMessageStorePyArrow(store_config=raw_config("rows.arrows"), table=table))
            job._poll_rings()
            assert job.has_unflushed_data() and released(writer) == 0, "given back before the write"
            job._write_out()
            assert released(writer) == 10

            writer.write(
                DAQJobMessageStoreTabular(
                    store_config=raw_config("rows.arrows"), keys=["n", "name"], data=[[7, "t"], [8, None]]
                )
            )
            step(job)
        finally:
            job.free()
    with open(os.path.join(out, "frames.bin"), "rb") as f:
        assert f.read() == b"".join(frame(n) for n in range(5))
    table = read_stream(os.path.join(out, "rows.arrows"))
    assert table.column("n").to_pylist() == [0, 100, 1, 101, 2, 102, 3, 103, 4, 104, 7, 8]
    assert table.column("name").to_pylist() == [
        "a0",
        None,
        "a1",
        None,
        "a2",
        None,
        "a3",
        None,
        "a4",
        None,
        "t",
        None,
    ]


def test_a_file_holds_one_kind_a_restarted_store_continues_its_stream(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    config = raw_config("data.arrows")
    job = store("DAQJobStoreRaw", None, out_dir=out)
    for message in (
        DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [1, 2]})),
        DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"other": ["x"]})),  # -> data_1
        DAQJobMessageStoreRaw(store_config=config, data=b"not a stream"),  # -> data_2
        DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": pa.array([3], pa.int32())})),
    ):
        job._handle(message)
    job.store_loop()
    job.free()

    again = store("DAQJobStoreRaw", None, out_dir=out)  # the next run: the stream goes on
    again._handle(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [4]})))
    again._handle(DAQJobMessageStoreRaw(store_config=config, data=b" and more"))
    again.store_loop()
    again.free()

    assert read_stream(os.path.join(out, "data.arrows")).column("n").to_pylist() == [1, 2, 3, 4]
    assert read_stream(os.path.join(out, "data_1.arrows")).column("other").to_pylist() == ["x"]
    with open(os.path.join(out, "data_2.arrows"), "rb") as f:
        assert f.read() == b"not a stream and more"


def test_overwrite_keeps_the_newest_message_replaced_whole(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    job = store("DAQJobStoreRaw", None, out_dir=out)
    try:
        for n in range(3):
            job._handle(DAQJobMessageStoreRaw(store_config=raw_config("latest.png", True), data=frame(n)))
            table = pa.table({"n": [n] * (n + 1)})
            job._handle(
                DAQJobMessageStorePyArrow(store_config=raw_config("latest.arrows", True), table=table)
            )
        job.store_loop()
        with open(os.path.join(out, "latest.png"), "rb") as f:
            assert f.read() == frame(2)
        assert read_stream(os.path.join(out, "latest.arrows")).column("n").to_pylist() == [2, 2, 2]
        job._handle(DAQJobMessageStoreRaw(store_config=raw_config("latest.png", True), data=b"newer"))
        job.store_loop()
        with open(os.path.join(out, "latest.png"), "rb") as f:
            assert f.read() == b"newer"
        assert sorted(os.listdir(out)) == ["latest.arrows", "latest.png"], "a temporary file was left"
    finally:
        job.free()


def test_a_failed_write_keeps_the_slots_and_the_retry_writes_every_byte_once(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    os.makedirs(out)
    with ring(str(tmp_path / "run")) as (settings, writer):
        job = store("DAQJobStoreRaw", settings, out_dir=out)
        try:
            writer.write(DAQJobMessageStoreRaw(store_config=raw_config("frames.bin"), data=frame(0)))
            step(job)
            with output_dir_replaced_by_a_file(out):
                for n in (1, 2, 3):
                    writer.write(DAQJobMessageStoreRaw(store_config=raw_config("frames.bin"), data=frame(n)))
                    table = pa.table({"n": [n]})
                    writer.write(DAQJobMessageStorePyArrow(store_config=raw_config("t.arrows"), table=table))
                step(job)
                assert job._writes.failing and job.counters.write_failing == 1
                assert "NotADirectoryError" in (job.counters.last_error or "")
                assert released(writer) == 1, "slots given back although nothing was written"
                wait_for(lambda: (step(job), job.counters.write_errors >= 2)[1], 5, "a failed retry")
            wait_for(lambda: (step(job), not job._writes.failing)[1], 5, "the retry after the repair")
            assert released(writer) == 7
        finally:
            job.free()
    with open(os.path.join(out, "frames.bin"), "rb") as f:
        assert f.read() == b"".join(frame(n) for n in range(4))
    assert read_stream(os.path.join(out, "t.arrows")).column("n").to_pylist() == [1, 2, 3]


def test_bytes_that_only_look_like_a_stream_stay_raw_and_tables_go_beside_them(tmp_path: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    lookalike = b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"not arrow at all"
    (out / "data.bin").write_bytes(lookalike)
    config = raw_config("data.bin")
    job = store("DAQJobStoreRaw", None, out_dir=str(out))
    try:
        job._handle(DAQJobMessageStoreRaw(store_config=config, data=b"+more"))
        job._handle(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [1]})))
        job.store_loop()
    finally:
        job.free()
    assert (out / "data.bin").read_bytes() == lookalike + b"+more"
    assert read_stream(str(out / "data_1.bin")).column("n").to_pylist() == [1]
