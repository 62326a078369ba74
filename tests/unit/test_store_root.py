"""The ROOT store, driven step by step over real rings: what it writes (read back with uproot, value
by value, with the compression asked for), when it writes (by size, by time), a restarted store
that extends its tree, what it refuses, a kill -9 in the middle of a write and right after one
(the undo log and the journal), and I/O errors (the output directory replaced by a file; a disk
that fills up in the middle of a write).
"""

from __future__ import annotations

import datetime
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import uproot

from enrgdaq.daq.jobs.store.root import DAQJobStoreROOT, DAQJobStoreROOTConfig
from enrgdaq.daq.store import paths
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigROOT,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from tests.harness.waiting import wait_for
from tests.unit.file_store_rig import recovered_after
from tests.unit.test_store_hdf5 import Today, small_disk  # noqa: F401  (small_disk: a fixture)
from tests.unit.test_store_write_errors import output_dir_replaced_by_a_file, step

STORE = "store_root"
MAGIC = {"ZSTD": b"ZS", "LZ4": b"L4", "ZLIB": b"ZL", "LZMA": b"XZ"}


def config(kind: str = "ZSTD", level: int = 5, file_path: str = "run.root") -> DAQJobStoreConfig:
    return DAQJobStoreConfig(
        root=DAQJobStoreConfigROOT(
            file_path=file_path,
            add_date=False,
            tree_name="events",
            compression_type=kind,
            compression_level=level,
        )
    )


ROOT = config()


def make_ring(tmp_path: Any, slot_bytes: int = 4096) -> tuple[DataPlaneSettings, RingWriter]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir, exist_ok=True)
    settings = DataPlaneSettings(
        run_dir=run_dir, ring_bytes=64 * slot_bytes, slot_bytes=slot_bytes, block_timeout_s=0.05
    )
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE])
    return settings, writer


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    settings, writer = make_ring(tmp_path)
    try:
        yield settings, writer
    finally:
        writer.close()


def root_store(out_dir: str, settings: DataPlaneSettings, **options: Any) -> DAQJobStoreROOT:
    options.setdefault("flush_interval_seconds", 0.001)
    store = DAQJobStoreROOT(
        DAQJobStoreROOTConfig(
            daq_job_type="DAQJobStoreROOT", daq_job_unique_id=STORE, out_dir=out_dir, **options
        )
    )
    store.configure_data_plane(settings)
    store._skip = store._recovered()  # what start() does first
    return store


def rows(first: int, n: int = 2, store_config: DAQJobStoreConfig = ROOT) -> DAQJobMessageStorePyArrow:
    seq = list(range(first, first + n))
    table = pa.table({"seq": seq, "value": [s * 0.5 for s in seq]})
    return DAQJobMessageStorePyArrow(store_config=store_config, table=table)


def read(path: str, tree: str = "events") -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return f[tree].arrays(library="np")


def write_all(store: DAQJobStoreROOT) -> None:
    """Steps until everything the store took is written (the time flush is 1 ms here)."""
    wait_for(lambda: (step(store), not store.has_unflushed_data())[1], 10, "the store to write")


@pytest.mark.parametrize("kind", ["ZSTD", "LZ4", "ZLIB", "LZMA"])
def test_columns_become_branches_value_by_value_compressed_as_asked(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, kind: str
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings)
    asked = config(kind, 9)
    when = pa.array([1_700_000_000_000, None], pa.timestamp("ms"))
    first = pa.table(
        {"seq": [0, 1], "energy": [1.5, None], "ok": [True, False], "t": when, "name": ["a", "bc"]}
    )
    many = pa.table({n: pa.array(np.arange(4, 5004) % 7) for n in ("seq", "energy")})  # compressible
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=asked, table=first))
        step(store)
        store._deliver(
            DAQJobMessageStoreTabular(
                store_config=asked,
                keys=["seq", "energy", "ok", "t", "name"],
                data=[[2, 2.5, True, 5, "x"], [3, 3.5, False, 6, ""]],
            )
        )
        write_all(store)
        store._deliver(DAQJobMessageStorePyArrow(store_config=config(kind, 9, "many.root"), table=many))
        write_all(store)
        gc.collect()
        assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 1, (
            "slot not given back after the write"
        )
    finally:
        store.free()
    got = read(os.path.join(out_dir, "run.root"))
    assert got["seq"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(got["energy"], [1.5, np.nan, 2.5, 3.5])
    assert got["ok"].tolist() == [True, False, True, False]
    assert got["t"].tolist() == [1_700_000_000_000, 0, 5, 6]
    assert got["name"].tolist() == ["a", "bc", "x", ""]
    assert read(os.path.join(out_dir, "many.root"))["energy"].tolist() == (np.arange(4, 5004) % 7).tolist()
    assert compressed_with(os.path.join(out_dir, "many.root")) == MAGIC[kind]


def compressed_with(path: str) -> bytes:
    """The algorithm tag of the first basket of branch ``seq`` (after the basket's key)."""
    with uproot.open(path) as f:
        seek = int(f["events"]["seq"].member("fBasketSeek")[0])
        head = f.file.source.chunk(seek, seek + 128).raw_data.tobytes()
        key_length = int.from_bytes(head[14:16], "big")
        return head[key_length : key_length + 2]


def test_rows_are_written_by_time_and_by_size_one_basket_a_write(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    path = os.path.join(out_dir, "run.root")
    store = root_store(out_dir, settings, flush_interval_seconds=0.5, buffer_size_bytes=2000)
    try:
        # By time (the original's time flush never ran): one message, nothing more comes.
        writer.write(rows(0))
        sent = time.monotonic()
        step(store)
        assert not os.path.exists(path), "written before the flush interval"
        wait_for(lambda: (step(store), os.path.exists(path))[1], 5, "the timed write")
        assert time.monotonic() - sent >= 0.5
        # By size: 16 bytes a row, 800 a message; 2000 bytes are reached with the third message.
        for first in (2, 52):
            writer.write(rows(first, 50))
        step(store)
        assert read(path)["seq"].tolist() == [0, 1], "written before buffer_size_bytes were held"
        writer.write(rows(102, 50))
        step(store)
        assert read(path)["seq"].tolist() == list(range(152)), "not written once buffer_size_bytes were held"
    finally:
        store.free()
    with uproot.open(path) as f:
        assert f["events"]["seq"].num_baskets == 2, "one basket a write"


def test_a_restarted_store_extends_its_tree_and_rows_with_other_columns_go_to_a_new_file(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    for first in (0, 4):
        store = root_store(out_dir, settings)
        try:
            writer.write(rows(first, 4))
            write_all(store)
        finally:
            store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == list(range(8)), "one tree, extended"

    store = root_store(out_dir, settings)  # a producer whose rows have other columns now
    try:
        writer.write(
            DAQJobMessageStorePyArrow(store_config=ROOT, table=pa.table({"seq": [8], "gain": [2.0]}))
        )
        write_all(store)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == list(range(8)), "the old file untouched"
    assert read(os.path.join(out_dir, "run_1.root"))["gain"].tolist() == [2.0]


def test_raw_bytes_nested_columns_and_rows_that_do_not_fit_the_tree_are_refused(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings)
    try:
        writer.write(rows(0))
        writer.write(DAQJobMessageStoreRaw(store_config=ROOT, data=b"\x00"))
        writer.write(
            DAQJobMessageStorePyArrow(store_config=ROOT, table=pa.table({"seq": [[1, 2]], "value": [1.0]}))
        )
        writer.write(DAQJobMessageStorePyArrow(store_config=ROOT, table=pa.table({"seq": [9]})))
        writer.write(
            DAQJobMessageStorePyArrow(store_config=ROOT, table=pa.table({"seq": [9], "value": ["x"]}))
        )
        writer.write(rows(2))
        write_all(store)
        assert store.counters.unsupported == 4
        gc.collect()
        assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 6
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == [0, 1, 2, 3]


KILLED = """
import os, signal, sys, time
from enrgdaq.daq.jobs.store.root import DAQJobStoreROOT, DAQJobStoreROOTConfig
from enrgdaq.daq.store.undo import UndoLog
from enrgdaq.data.settings import DataPlaneSettings
from tests.harness.waiting import wait_for
run_dir, store_id, out_dir, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = DAQJobStoreROOT(DAQJobStoreROOTConfig(daq_job_type="DAQJobStoreROOT",
    daq_job_unique_id=store_id, out_dir=out_dir, flush_interval_seconds=0.001))
store.configure_data_plane(DataPlaneSettings(run_dir=run_dir, ring_bytes=64 * 4096, slot_bytes=4096))
store._skip = store._recovered()
store._poll_rings()
wait_for(store._due, 5, "the rows to be due (flush_interval_seconds)", interval=0.001)
store._write_out()  # the first rows: written, their slots given back
print("written" if not store.has_unflushed_data() else "not written", flush=True)
sys.stdin.readline()  # the test sends more rows
saves = 0
save = UndoLog.save
def save_then_die(self, number, offset, data):
    global saves
    saves += 1
    save(self, number, offset, data)
    if saves == kill_at:  # in the middle of uproot's patches of the tree, directory and header
        print("killed in the write", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
UndoLog.save = save_then_die
store._poll_rings()
wait_for(store._due, 5, "the rows to be due (flush_interval_seconds)", interval=0.001)
store.store_loop()  # kill_at 0: the whole write done, the slots not given back yet
print("killed after the write", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_in_a_write(settings: DataPlaneSettings, writer: RingWriter, out_dir: str, kill_at: int) -> str:
    """Run KILLED: 4 rows written, 4 more given to it, killed -9 at its ``kill_at``-th save of the
    undo log (0: right after the whole write). What it said last."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED), settings.run_dir, STORE, out_dir, str(kill_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as killed:
        assert killed.stdin is not None and killed.stdout is not None
        assert killed.stdout.readline() == "written\n"
        writer.write(rows(4, 4))
        killed.stdin.write("go\n")
        killed.stdin.flush()
        said = killed.stdout.readline()
        assert killed.wait(60) == -signal.SIGKILL
    return said


@pytest.mark.parametrize(
    "kill_at", [2, 6, 8, 0], ids=["2nd-patch", "6th-patch", "8th-patch", "after-the-write"]
)
def test_a_store_killed_in_or_right_after_a_write_leaves_a_readable_file_and_writes_each_row_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, kill_at: int
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    path = os.path.join(out_dir, "run.root")
    writer.write(rows(0, 4))
    said = killed_in_a_write(settings, writer, out_dir, kill_at)
    assert said == ("killed after the write\n" if kill_at == 0 else "killed in the write\n")
    gc.collect()
    assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 1, "slots given back before the kill"

    store = root_store(out_dir, settings)  # the next run
    try:
        writer.write(rows(8, 4))
        write_all(store)
    finally:
        store.free()
    got = read(path)
    assert got["seq"].tolist() == list(range(12)), "a row lost or written twice"
    assert got["value"].tolist() == [s * 0.5 for s in range(12)]
    assert [n for n in os.listdir(out_dir) if n != "run.root"] == [], "an undo log or another file left"


def test_restarted_while_its_output_directory_is_replaced_it_waits_then_writes_each_row_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    """Killed right after a write; the next run starts while a file stands where ``out`` was: it
    can neither read its undo log nor the tree, so it stalls and takes nothing (it used to give
    up on the undo and write the killed write's rows a second time once the directory was back)."""
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    writer.write(rows(0, 4))
    assert killed_in_a_write(settings, writer, out_dir, 0) == "killed after the write\n"

    store = DAQJobStoreROOT(
        DAQJobStoreROOTConfig(
            daq_job_type="DAQJobStoreROOT",
            daq_job_unique_id=STORE,
            out_dir=out_dir,
            flush_interval_seconds=0.001,
        )
    )
    store.configure_data_plane(settings)
    try:
        store._skip = recovered_after(
            store, output_dir_replaced_by_a_file(out_dir), "cannot undo the write the crash cut short"
        )
        writer.write(rows(8, 4))
        write_all(store)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == list(range(12)), "a row lost or twice"


def test_an_unwritable_output_directory_holds_the_rows_and_the_retry_writes_each_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings)
    index = writer.ring.find_consumer(STORE)
    try:
        writer.write(rows(0))
        write_all(store)
        with output_dir_replaced_by_a_file(out_dir):
            writer.write(rows(2))
            wait_for(lambda: (step(store), store._writes.failing)[1], 5, "the write to fail")
            assert "NotADirectoryError" in (store.counters.last_error or "")
            gc.collect()
            assert writer.ring.cursor(index) == 1, "slots given back although their rows were not written"
        wait_for(
            lambda: (step(store), not store._writes.failing)[1], 5, "the retry once the directory is back"
        )
        writer.write(rows(4))
        write_all(store)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == list(range(6))


def test_a_write_cut_short_by_a_full_disk_is_undone_and_the_retry_writes_each_row_once(
    tmp_path: Any,
    small_disk: str,  # noqa: F811
) -> None:
    settings, writer = make_ring(tmp_path, slot_bytes=65536)
    store = root_store(small_disk, settings)
    noise = np.random.default_rng(7)
    try:
        table = pa.table({"seq": np.arange(2000), "value": noise.random(2000)})
        writer.write(DAQJobMessageStorePyArrow(store_config=config("ZLIB", 1), table=table))
        write_all(store)
        for first in range(2000, 40000, 2000):  # 600 kB of random numbers: more than the disk holds
            table = pa.table({"seq": np.arange(first, first + 2000), "value": noise.random(2000)})
            writer.write(DAQJobMessageStorePyArrow(store_config=config("ZLIB", 1), table=table))
        wait_for(lambda: (step(store), store._writes.failing)[1], 5, "the write to fail on the full disk")
        assert "No space left" in (store.counters.last_error or ""), store.counters.last_error
        subprocess.run(["mount", "-o", "remount,size=4m", small_disk], check=True)
        wait_for(lambda: (step(store), not store._writes.failing)[1], 10, "the retry once there is room")
    finally:
        store.free()
        writer.close()
    assert read(os.path.join(small_disk, "run.root"))["seq"].tolist() == list(range(40000))


def test_flush_interval_seconds_is_the_originals_name_for_flush_interval() -> None:
    given = DAQJobStoreROOTConfig(daq_job_type="DAQJobStoreROOT", flush_interval_seconds=0.25)
    assert given.flush_interval == 0.25 and given.buffer_size_bytes == 5_000_000
    assert DAQJobStoreROOTConfig(daq_job_type="DAQJobStoreROOT").flush_interval == 1.0


def test_with_add_date_the_file_rolls_over_at_midnight(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    today = Today(datetime.date(2026, 3, 1))
    monkeypatch.setattr(paths, "date", today)
    dated = DAQJobStoreConfig(
        root=DAQJobStoreConfigROOT(file_path="run.root", add_date=True, tree_name="events")
    )
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings)
    try:
        writer.write(rows(0, store_config=dated))
        write_all(store)
        today.day = datetime.date(2026, 3, 2)
        writer.write(rows(2, store_config=dated))
        write_all(store)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "2026-03-01_run.root"))["seq"].tolist() == [0, 1]
    assert read(os.path.join(out_dir, "2026-03-02_run.root"))["seq"].tolist() == [2, 3]


def test_fsync_syncs_the_undo_log_before_each_overwrite_and_the_file_before_each_commit(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings, fsync=True)
    try:
        for first in (0, 2):
            writer.write(rows(first))
            write_all(store)
    finally:
        store.free()
    assert synced.count(os.path.join(out_dir, "run.root")) == 2, synced
    assert os.path.join(out_dir, f".enrgdaq-undo-{STORE}") in synced, "the undo log was not synced"
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == [0, 1, 2, 3]


def test_a_tree_uproot_cannot_extend_is_left_alone_and_the_rows_go_to_the_next_name(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = root_store(out_dir, settings)
    try:
        writer.write(rows(0, 4))
        write_all(store)
    finally:
        store.free()
    extend = uproot.writing.writable.WritableTree.extend

    def as_for_a_tree_root_wrote(tree: Any, data: Any, **options: Any) -> Any:
        if tree._file.file_path.endswith("run.root"):  # e.g. branches with different basket counts
            raise NotImplementedError("extend for a TTree whose branches do not all have the same baskets")
        return extend(tree, data, **options)

    monkeypatch.setattr(uproot.writing.writable.WritableTree, "extend", as_for_a_tree_root_wrote)
    store = root_store(out_dir, settings)
    try:
        writer.write(rows(4, 4))
        wait_for(lambda: (step(store), store.counters.write_errors == 1)[1], 5, "the write to fail once")
        write_all(store)
        assert store.counters.write_failing == 0 and "run.root" in str(store.counters.last_error)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.root"))["seq"].tolist() == [0, 1, 2, 3], "the old file changed"
    assert read(os.path.join(out_dir, "run_1.root"))["seq"].tolist() == [4, 5, 6, 7]
