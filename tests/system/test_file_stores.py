"""The CSV (zstd), Raw, Parquet and Memory stores in a whole system (supervisor, beat, workers), fed by
real producers through their rings; every file read back with pyarrow (csv, ipc, parquet) and
compared value by value with what was sent:

* several stores fed at once, stopped cleanly: every row once in each, raw bytes as sent, the
  Parquet store counting the raw bytes it cannot store;
* the Raw and the Parquet store killed -9 at their worst moments (right after a write, before its
  ring slots are given back; the Parquet store also right after rows went into the Parquet file,
  before its write-ahead file is removed): every row exactly once;
* the output directory replaced by a file: both stall (status), the producer is held back, the
  Memory store beside them is unaffected, and once the directory is back every row is there once.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.harness.system import DAQSystem
from tests.harness.waiting import stays, wait_for
from tests.system.test_policies import enrgdaq
from tests.system.test_store_losses import output_dir_replaced_by_a_file, status_of

pytestmark = pytest.mark.system

STORE_TYPES = {
    "store_csv": "DAQJobStoreCSV",
    "store_raw": "DAQJobStoreRaw",
    "store_parquet": "DAQJobStoreParquet",
}


def start(system: DAQSystem, store_workers: int) -> None:
    """Supervisor, beat, a worker for the producers and one with a pool child per store."""
    procs = [
        system.start_supervisor(),
        system.start_beat(),
        system.start_worker("default", concurrency=2),
        system.start_worker("store", concurrency=store_workers),
    ]
    for proc in procs:
        if proc.name != "beat":
            proc.wait_ready()


def store_file(system: DAQSystem, name: str, job_type: str, extra: str = "") -> None:
    out_dir = "" if "Memory" in job_type else f'out_dir = "{system.out_dir}/"'
    system.write(f"{name}.toml", f'daq_job_type = "{job_type}"\n{out_dir}\n{extra}\n')


def sequence(system: DAQSystem, rate_hz: int, rows: int, stores: str) -> None:
    system.write(
        "seq.toml",
        f'daq_job_type = "DAQJobSequence"\nrate_hz = {rate_hz}\nrows_per_message = {rows}\n{stores}',
    )


def stop_all(system: DAQSystem, producers: list[str], stores: list[str]) -> dict[str, int]:
    """Stop the producers, then the stores (which write all their rings hold at their stop);
    returns how many messages each producer sent."""
    assert enrgdaq(system, "stop", *producers).returncode == 0
    for uid in producers:
        system.wait_state(uid, "stopped", timeout=15)
    sent = {uid: int(system.job(uid).stats_dict["sent"]) for uid in producers}
    assert enrgdaq(system, "stop", *stores).returncode == 0
    for uid in stores:
        system.wait_state(uid, "stopped", timeout=30)
    return sent


def read_stream(path: str) -> pa.Table:
    with open(path, "rb") as f:
        return ipc.open_stream(f).read_all()


def assert_sequence(table: pa.Table, rows: int, per_message: int, where: str) -> None:
    """``seq`` holds 0 .. rows-1 once each, in order, and ``value`` what DAQJobSequence sent with it
    (the first sequence number of its message)."""
    seqs = table.column("seq").to_pylist()
    twice = sorted(s for s, n in Counter(seqs).items() if n > 1)
    assert not twice, f"{where}: {len(twice)} row(s) written twice, from {twice[:5]}"
    assert seqs == list(range(rows)), f"{where}: a row missing or out of order"
    values = table.column("value").to_pylist()
    assert values == [float(s - s % per_message) for s in seqs], f"{where}: a value not as sent"


def test_one_producer_feeds_four_stores_and_each_holds_every_row_once(
    system: DAQSystem, tmp_path: Any
) -> None:
    dump = str(tmp_path / "memory.arrows")
    sequence(
        system,
        rate_hz=150,
        rows=3,
        stores="""
        [store_config.csv]
        file_path = "seq.csv.zst"
        use_zstd = true
        [store_config.raw]
        file_path = "seq.arrows"
        overwrite = false
        [store_config.parquet]
        file_path = "seq.parquet"
        row_group_rows = 300
        [store_config.memory]
        """,
    )
    system.write(
        "frames.toml",
        """
        daq_job_type = "DAQJobRawSequence"
        rate_hz = 100
        [store_config.raw]
        file_path = "frames.bin"
        overwrite = false
        [store_config.parquet]
        file_path = "frames.parquet"
        [store_config.memory]
        """,
    )
    for name, job_type in STORE_TYPES.items():
        store_file(system, name, job_type, "row_group_seconds = 0.5" if name == "store_parquet" else "")
    store_file(system, "store_memory", "DAQJobStoreMemoryDump", f'dump_path = "{dump}"')
    start(system, store_workers=4)
    wait_for(
        lambda: (
            os.path.exists(os.path.join(system.out_dir, "seq.parquet"))
            and system.job("frames").stats_dict.get("sent", 0) >= 100
        ),
        40,
        "row groups in the Parquet file and frames sent",
    )
    wait_for(
        lambda: status_of(system)["store_parquet"]["data"].get("unsupported", 0) >= 1,
        10,
        "the raw bytes sent to the Parquet store counted as unsupported",
        interval=0.2,
    )
    assert "store_parquet: " in (table := enrgdaq(system, "status").stdout), table
    assert "store messages of a kind this store cannot store" in table, table

    sent = stop_all(system, ["seq", "frames"], [*STORE_TYPES, "store_memory"])
    rows, frames = sent["seq"] * 3, sent["frames"]
    out = system.out_dir
    assert_sequence(
        pa_csv.read_csv(pa.input_stream(f"{out}/seq.csv.zst", compression="zstd")), rows, 3, "CSV"
    )
    assert_sequence(read_stream(f"{out}/seq.arrows"), rows, 3, "Raw")
    assert_sequence(pq.read_table(f"{out}/seq.parquet"), rows, 3, "Parquet")
    assert pq.ParquetFile(f"{out}/seq.parquet").metadata.num_row_groups >= 2
    with open(f"{out}/frames.bin", "rb") as f:
        assert f.read() == b"".join(b"%d\n" % n for n in range(frames)), "raw bytes not as sent"
    assert sorted(os.listdir(out)) == ["frames.bin", "seq.arrows", "seq.csv.zst", "seq.parquet"]

    assert_sequence(read_stream(dump), rows, 3, "Memory")
    with open(dump + ".bin", "rb") as f:
        assert f.read() == b"".join(b"%d\n" % n for n in range(frames))


def test_raw_and_parquet_stores_killed_9_at_their_worst_moments_write_every_row_once(
    system: DAQSystem, tmp_path: Any
) -> None:
    # A ring that outlasts the restarts (2 s each) at 100 messages/s: the producer is never held.
    system.write_supervisor("ring_buffer_size_mb = 8\nring_buffer_slot_size_kb = 16")
    sequence(
        system,
        rate_hz=100,
        rows=2,
        stores="""
        [store_config.raw]
        file_path = "seq.arrows"
        overwrite = false
        [store_config.parquet]
        file_path = "seq.parquet"
        """,
    )
    markers = {name: str(tmp_path / name) for name in ("raw", "parquet", "parquet_commit")}
    store_file(
        system,
        "store_raw",
        "DAQJobStoreRawKilledAfterWrite",
        f'kill_after_rows = 200\nmarker = "{markers["raw"]}"',
    )
    store_file(
        system,
        "store_parquet",
        "DAQJobStoreParquetKilled",
        f'row_group_seconds = 0.5\nkill_after_rows = 300\nmarker = "{markers["parquet"]}"\n'
        f'commit_marker = "{markers["parquet_commit"]}"',
    )
    start(system, store_workers=2)
    wait_for(
        lambda: all(os.path.exists(m) for m in markers.values()),
        60,
        f"each store to kill itself at its worst moments (logs in {system.log_dir})",
    )
    for uid, kills in (("store_raw", 1), ("store_parquet", 2)):
        wait_for(
            lambda uid=uid, kills=kills: (
                system.job(uid).restarts >= kills and system.job(uid).state.value == "running"
            ),
            30,
            f"{uid} to run again after {kills} kill(s)",
        )
    sent_at = system.job("seq").stats_dict.get("sent", 0)
    wait_for(
        lambda: system.job("seq").stats_dict.get("sent", 0) >= sent_at + 100, 30, "rows after the restarts"
    )

    sent = stop_all(system, ["seq"], ["store_raw", "store_parquet"])
    rows = sent["seq"] * 2
    assert_sequence(read_stream(os.path.join(system.out_dir, "seq.arrows")), rows, 2, "Raw")
    assert_sequence(pq.read_table(os.path.join(system.out_dir, "seq.parquet")), rows, 2, "Parquet")
    assert sorted(os.listdir(system.out_dir)) == ["seq.arrows", "seq.parquet"], "a write-ahead file was left"
    producer = system.job("seq").stats_dict
    assert producer["unrouted"] == 0 and producer.get("ring_dropped", 0) == 0, producer


def test_an_unwritable_output_directory_stalls_raw_and_parquet_not_memory_and_loses_no_row(
    system: DAQSystem, tmp_path: Any
) -> None:
    system.write_supervisor(
        "ring_buffer_size_mb = 1\nring_buffer_slot_size_kb = 64\nring_block_timeout_seconds = 0.5"
    )
    sequence(
        system,
        rate_hz=100,
        rows=1,
        stores="""
        [store_config.raw]
        file_path = "seq.arrows"
        overwrite = false
        [store_config.parquet]
        file_path = "seq.parquet"
        [store_config.memory]
        """,
    )
    store_file(system, "store_raw", "DAQJobStoreRaw")
    store_file(system, "store_parquet", "DAQJobStoreParquet", "row_group_seconds = 0.5")
    store_file(system, "store_memory", "DAQJobStoreMemoryDump", f'dump_path = "{tmp_path / "memory.arrows"}"')
    start(system, store_workers=3)
    wait_for(lambda: os.path.exists(os.path.join(system.out_dir, "seq.parquet")), 30, "a first row group")

    with output_dir_replaced_by_a_file(system.out_dir):
        jobs = wait_for(
            lambda: (
                (found := status_of(system))["store_raw"]["state"] == "stalled"
                and found["store_parquet"]["state"] == "stalled"
                and found["seq"]["data"].get("ring_occupancy", 0) >= found["seq"]["data"].get("ring_slots", 1)
                and found
            ),
            30,
            "both file stores stalled and the producer's ring full",
            interval=0.2,
        )
        for uid in ("store_raw", "store_parquet"):
            assert "NotADirectoryError" in jobs[uid]["error"], jobs[uid]
            assert jobs[uid]["data"]["write_failing"] == 1 and jobs[uid]["restarts"] == 0, jobs[uid]
        assert jobs["store_memory"]["state"] == "running", "the Memory store was held up by the others"
        assert jobs["seq"]["data"]["ring_dropped"] == 0
        blocked_at = system.job("seq").stats_dict["sent"]
        stays(lambda: system.job("seq").stats_dict["sent"] <= blocked_at + 1, 2.0, "the producer held back")

    for uid in ("store_raw", "store_parquet"):
        wait_for(lambda uid=uid: status_of(system)[uid]["state"] == "running", 30, f"{uid} to write again")
    wait_for(lambda: system.job("seq").stats_dict["sent"] >= blocked_at + 100, 30, "the producer to go on")

    sent = stop_all(system, ["seq"], ["store_raw", "store_parquet", "store_memory"])
    assert_sequence(read_stream(os.path.join(system.out_dir, "seq.arrows")), sent["seq"], 1, "Raw")
    assert_sequence(pq.read_table(os.path.join(system.out_dir, "seq.parquet")), sent["seq"], 1, "Parquet")
    assert_sequence(read_stream(str(tmp_path / "memory.arrows")), sent["seq"], 1, "Memory")
