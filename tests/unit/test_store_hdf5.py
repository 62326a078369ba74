"""The HDF5 store, driven step by step over real rings: what it writes (read back with h5py, value
by value), what it refuses, a reader in another process while it writes (SWMR), a kill -9 right
after a write (the journal, and the file the killed writer left open), and I/O errors (the output
directory replaced by a file; a disk that fills up in the middle of a write).
"""

from __future__ import annotations

import datetime
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pytest

from enrgdaq.daq.jobs.store import hdf5
from enrgdaq.daq.jobs.store.hdf5 import DAQJobStoreHDF5, DAQJobStoreHDF5Config
from enrgdaq.daq.store import paths
from enrgdaq.daq.store.hdf5_repair import left_open
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigHDF5,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from tests.harness.waiting import wait_for
from tests.unit.file_store_rig import moved_away, recovered_after
from tests.unit.test_store_write_errors import output_dir_replaced_by_a_file, step

H5 = DAQJobStoreConfig(hdf5=DAQJobStoreConfigHDF5(file_path="run.h5", add_date=False, dataset_name="adc"))
STORE = "store_h5"


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=64 * 4096, slot_bytes=4096, block_timeout_s=0.05)
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE])
    try:
        yield settings, writer
    finally:
        writer.close()


def h5_store(out_dir: str, settings: DataPlaneSettings) -> DAQJobStoreHDF5:
    store = DAQJobStoreHDF5(
        DAQJobStoreHDF5Config(daq_job_type="DAQJobStoreHDF5", daq_job_unique_id=STORE, out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    store._skip = store._recovered()  # what start() does first
    return store


def rows(first: int, n: int = 2) -> DAQJobMessageStorePyArrow:
    seq = list(range(first, first + n))
    return DAQJobMessageStorePyArrow(
        store_config=H5, table=pa.table({"seq": seq, "value": [s * 0.5 for s in seq]})
    )


def read(path: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: dataset[:] for name, dataset in f["adc"].items()}


def test_tables_and_tabular_rows_are_stored_value_by_value_one_chunked_resizable_dataset_per_column(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = h5_store(out_dir, settings)
    when = pa.array([1_700_000_000_000_000, None], pa.timestamp("us"))
    first = pa.table({"seq": [0, 1], "energy": [1.5, None], "ok": [True, False], "t": when})
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=H5, table=first))
        writer.write(
            DAQJobMessageStorePyArrow(store_config=H5, table=pa.table({"seq": pa.array([2], pa.int32())}))
        )
        step(store)
        # The original's tabular rows (deprecated, still sent by old jobs); a new column on the way.
        store._deliver(
            DAQJobMessageStoreTabular(store_config=H5, keys=["seq", "gain"], data=[[3, 7], [4, 8]])
        )
        step(store)
        gc.collect()
        assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 2, (
            "slots not given back after the write"
        )
    finally:
        store.free()

    path = os.path.join(out_dir, "run.h5")
    columns = read(path)
    assert columns["seq"].tolist() == [0, 1, 2, 3, 4] and columns["seq"].dtype == np.int64
    np.testing.assert_array_equal(columns["energy"], [1.5, np.nan, np.nan, np.nan, np.nan])
    assert columns["ok"].tolist() == [True, False, False, False, False]
    assert columns["t"].tolist() == [1_700_000_000_000_000, 0, 0, 0, 0]
    assert columns["gain"].tolist() == [0, 0, 0, 7, 8], "a new column: earlier rows hold the fill value"
    with h5py.File(path, "r") as f:
        for dataset in f["adc"].values():
            assert dataset.maxshape == (None,) and dataset.chunks is not None
        assert f["adc/t"].attrs["arrow_type"] == "timestamp[us]"
    assert not left_open(path), "a clean stop leaves the file closed"


def test_raw_bytes_and_text_columns_are_refused_counted_and_said_once_the_rest_is_stored(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = h5_store(out_dir, settings)
    text = pa.table({"seq": [100], "name": ["adc0"]})
    try:
        with caplog.at_level(logging.ERROR):
            for n in range(2):
                writer.write(DAQJobMessageStoreRaw(store_config=H5, data=b"\x00\x01"))
                writer.write(DAQJobMessageStorePyArrow(store_config=H5, table=text))
                writer.write(rows(2 * n))
            step(store)
            floats = pa.table({"seq": [0.5], "value": [1.0]})  # floats for the integer dataset
            writer.write(DAQJobMessageStorePyArrow(store_config=H5, table=floats))
            step(store)
        assert store.counters.unsupported == 5
        said = [r.getMessage() for r in caplog.records if "cannot store" in r.getMessage()]
        assert len(said) == 2, said
        assert any("holds text" in line for line in said) and any(
            "DAQJobMessageStoreRaw" in line for line in said
        )
        gc.collect()
        assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 7, "refused payloads kept in the ring"
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.h5"))["seq"].tolist() == [0, 1, 2, 3]


SWMR_READER = """
import json, sys
import h5py
from tests.harness.waiting import wait_for
path, want = sys.argv[1], int(sys.argv[2])
f = h5py.File(path, "r", libver="latest", swmr=True)
seen = []

def all_rows_seen():
    seq, value = f["adc/seq"], f["adc/value"]
    seq.refresh(); value.refresh()
    n = min(seq.shape[0], value.shape[0])
    if not seen or n != seen[-1]:
        seen.append(n)
        got_seq, got_value = seq[:n].tolist(), value[:n].tolist()
        assert got_seq == list(range(n)), got_seq
        assert got_value == [s * 0.5 for s in range(n)], got_value
        print(json.dumps(n), flush=True)
    return n >= want

wait_for(all_rows_seen, 30, "the rows the store writes", interval=0.01)
f.close()
"""


def test_another_process_reads_the_file_while_the_store_writes_it_swmr(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    path = os.path.join(out_dir, "run.h5")
    store = h5_store(out_dir, settings)
    reader = None
    try:
        writer.write(rows(0))
        step(store)
        reader = subprocess.Popen(
            [sys.executable, "-c", SWMR_READER, path, "40"], stdout=subprocess.PIPE, text=True
        )
        assert reader.stdout is not None
        assert json.loads(reader.stdout.readline()) == 2, "the reader opened the file being written"
        for first in range(2, 40, 2):
            if first == 20:  # a new column: the store adds a dataset while the reader has the file open
                more = pa.table({"seq": [20, 21], "value": [10.0, 10.5], "gain": [1, 2]})
                writer.write(DAQJobMessageStorePyArrow(store_config=H5, table=more))
            else:
                writer.write(rows(first))
            step(store)
        out, _ = reader.communicate(timeout=30)
        assert reader.returncode == 0, "the reader failed (see its traceback above)"
        seen = [2, *(json.loads(line) for line in out.split())]
        assert seen[-1] == 40 and len(seen) >= 3, f"the reader saw the file grow: {seen}"
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait()
        store.free()


KILLED_AFTER_A_WRITE = """
import os, signal, sys
from enrgdaq.daq.jobs.store.hdf5 import DAQJobStoreHDF5, DAQJobStoreHDF5Config
from enrgdaq.data.settings import DataPlaneSettings
store = DAQJobStoreHDF5(DAQJobStoreHDF5Config(
    daq_job_type="DAQJobStoreHDF5", daq_job_unique_id=sys.argv[2], out_dir=sys.argv[3]))
store.configure_data_plane(DataPlaneSettings(run_dir=sys.argv[1], ring_bytes=64 * 4096, slot_bytes=4096))
store._skip = store._recovered()
store._poll_rings()
store.store_loop()  # written, and the file left open in SWMR mode; the slots not given back yet
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_after_a_write(settings: DataPlaneSettings, out_dir: str) -> None:
    """Run KILLED_AFTER_A_WRITE: a store that writes what waits in the ring and is killed -9."""
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_AFTER_A_WRITE), settings.run_dir, STORE, out_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def test_a_store_killed_right_after_a_write_leaves_a_file_its_next_run_repairs_and_writes_each_row_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    path = os.path.join(out_dir, "run.h5")
    for first in range(0, 10, 2):
        writer.write(rows(first))
    killed_after_a_write(settings, out_dir)
    assert left_open(path), "the killed writer's marks are in the file"
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r").close()
    assert writer.ring.cursor(writer.ring.find_consumer(STORE)) == 0, "slots given back before the kill"

    store = h5_store(out_dir, settings)  # the next run
    try:
        for first in range(10, 16, 2):
            writer.write(rows(first))
        step(store)
    finally:
        store.free()
    assert read(path)["seq"].tolist() == list(range(16)), "a row lost or written twice"
    assert not left_open(path)


def test_restarted_while_its_output_directory_is_away_it_waits_then_writes_each_row_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    """The next run starts while ``out`` is moved away (an unmounted disk): it cannot see the file
    its killed run wrote, so it stalls and takes nothing; it used to take the file for changed by
    someone else and write the killed write's rows a second time once the directory was back."""
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    for first in range(0, 10, 2):
        writer.write(rows(first))
    killed_after_a_write(settings, out_dir)

    store = DAQJobStoreHDF5(
        DAQJobStoreHDF5Config(daq_job_type="DAQJobStoreHDF5", daq_job_unique_id=STORE, out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    try:
        store._skip = recovered_after(store, moved_away(out_dir), f"{out_dir} is not a directory now")
        writer.write(rows(10))
        step(store)
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.h5"))["seq"].tolist() == list(range(12)), "a row lost or twice"


def test_an_unwritable_output_directory_holds_the_rows_and_the_retry_writes_each_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = h5_store(out_dir, settings)
    index = writer.ring.find_consumer(STORE)
    try:
        writer.write(rows(0))
        step(store)
        with output_dir_replaced_by_a_file(out_dir):
            writer.write(rows(2))
            step(store)
            assert store._writes.failing and "NotADirectoryError" in (store.counters.last_error or "")
            gc.collect()
            assert writer.ring.cursor(index) == 1, "slots given back although their rows were not written"
            writer.write(rows(4))
        wait_for(
            lambda: (step(store), not store._writes.failing)[1], 5, "the retry once the directory is back"
        )
        wait_for(lambda: (step(store), writer.ring.cursor(index) == 3)[1], 5, "every slot given back")
    finally:
        store.free()
    assert read(os.path.join(out_dir, "run.h5"))["seq"].tolist() == list(range(6))


@pytest.fixture
def small_disk(tmp_path: Any) -> Iterator[str]:
    mount_point = str(tmp_path / "small")
    os.makedirs(mount_point)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mount_point], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], check=False)


def in_a_child(body: Any) -> Any:
    """Run a test's body in a forked child that ends with ``os._exit``: after a full disk, the
    HDF5 library's state can crash the interpreter's own exit (``free(): invalid pointer``),
    which would take the whole test session down with it. The child reports its failure."""
    import functools
    import multiprocessing
    import traceback

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> None:
        ctx = multiprocessing.get_context("fork")
        report = ctx.SimpleQueue()

        def child() -> None:
            try:
                body(*args, **kwargs)
                report.put("")
            except BaseException:
                report.put(traceback.format_exc())
            os._exit(0)

        proc = ctx.Process(target=child)
        proc.start()
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        failure = report.get() if not report.empty() else f"the child ended with {proc.exitcode}"
        if failure:
            pytest.fail(failure, pytrace=False)

    return run


# HDF5 tries again to write what it holds for a dataset when the dataset's handle is let go, which
# fails too on the full disk: h5py can only print that ("Exception ignored in ... __dealloc__").
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@in_a_child
def test_a_write_cut_short_by_a_full_disk_is_cut_back_and_the_retry_writes_each_row_once(
    tmp_path: Any, small_disk: str
) -> None:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(
        run_dir=run_dir, ring_bytes=64 * 65536, slot_bytes=65536, block_timeout_s=0.05
    )
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE])
    store = h5_store(small_disk, settings)
    try:
        writer.write(rows(0, 2000))
        step(store)
        for first in range(2000, 22000, 2000):  # 20,000 rows: three more 64 KiB chunks a column
            writer.write(rows(first, 2000))
        step(store)
        assert store._writes.failing, "the write did not fail on the full disk"
        assert "No space left" in (store.counters.last_error or ""), store.counters.last_error
        subprocess.run(["mount", "-o", "remount,size=4m", small_disk], check=True)
        wait_for(lambda: (step(store), not store._writes.failing)[1], 10, "the retry once there is room")
    finally:
        store.free()
        writer.close()
    columns = read(os.path.join(small_disk, "run.h5"))
    assert columns["seq"].tolist() == list(range(22000)), "a row lost or written twice"
    assert columns["value"].tolist() == [s * 0.5 for s in range(22000)]


class Today:
    """Stands in for ``datetime.date`` in the file names: ``today()`` is what the test says."""

    def __init__(self, day: datetime.date) -> None:
        self.day = day

    def today(self) -> datetime.date:
        return self.day


def test_with_add_date_the_file_rolls_over_at_midnight_and_yesterdays_is_closed(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    today = Today(datetime.date(2026, 3, 1))
    monkeypatch.setattr(paths, "date", today)
    monkeypatch.setattr(hdf5, "IDLE_CLOSE_SECONDS", 0.0)
    dated = DAQJobStoreConfig(
        hdf5=DAQJobStoreConfigHDF5(file_path="run.h5", add_date=True, dataset_name="adc")
    )
    out_dir = str(tmp_path / "out")
    store = h5_store(out_dir, settings)
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=dated, table=pa.table({"seq": [0, 1]})))
        step(store)
        today.day = datetime.date(2026, 3, 2)
        writer.write(DAQJobMessageStorePyArrow(store_config=dated, table=pa.table({"seq": [2, 3]})))
        step(store)
        assert not left_open(os.path.join(out_dir, "2026-03-01_run.h5")), "yesterday's file still open"
    finally:
        store.free()
    assert read(os.path.join(out_dir, "2026-03-01_run.h5"))["seq"].tolist() == [0, 1]
    assert read(os.path.join(out_dir, "2026-03-02_run.h5"))["seq"].tolist() == [2, 3]


def test_fsync_syncs_the_file_at_each_write(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    out_dir = str(tmp_path / "out")
    store = DAQJobStoreHDF5(
        DAQJobStoreHDF5Config(
            daq_job_type="DAQJobStoreHDF5", daq_job_unique_id=STORE, out_dir=out_dir, fsync=True
        )
    )
    store.configure_data_plane(settings)
    try:
        for first in (0, 2):
            writer.write(rows(first))
            step(store)
    finally:
        store.free()
    assert synced.count(os.path.join(out_dir, "run.h5")) == 2, synced
