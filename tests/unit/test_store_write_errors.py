"""A store that cannot write keeps its data in the ring and retries; every row arrives once.

Real rings in a temp directory, a real CSV store driven step by step (its loop's own steps), and
real write failures: the output directory replaced by a regular file (works as root, which
ignores permission bits), a store that raises ``StoreWriteError``, a full tmpfs (skipped where
mounting is not permitted).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from enrgdaq.daq.jobs.store.csv import CSVFile, DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
)
from enrgdaq.daq.store.retry import RETRY_FIRST_SECONDS, error_text
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import StoreWriteError
from tests.harness.waiting import wait_for

CSV_CONFIG = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))


def payload(n: int) -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(store_config=CSV_CONFIG, table=pa.table({"n": [n]}))


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 4096, slot_bytes=4096, block_timeout_s=0.05)
    writer = RingWriter("producer", settings)
    try:
        yield settings, writer
    finally:
        writer.close()


def csv_store(out_dir: str, settings: DataPlaneSettings, unique_id: str = "store_csv") -> DAQJobStoreCSV:
    store = DAQJobStoreCSV(
        DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV", daq_job_unique_id=unique_id, out_dir=out_dir)
    )
    store.configure_data_plane(settings)
    return store


def numbers(path: str) -> list[int]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["n"], rows[:2]
    assert all(len(row) == 1 for row in rows), "a torn or merged row"
    return [int(row[0]) for row in rows[1:]]


def step(store: DAQJobStore) -> None:
    """One turn of the store's loop without the message plane: take from the rings, write out;
    while failing, retry once the backoff is over."""
    if store._writes.failing:
        if store._writes.seconds_left() <= 0:
            store._retry_writes()
        return
    store._poll_rings()
    store._write_out()


@contextlib.contextmanager
def output_dir_replaced_by_a_file(out_dir: str) -> Iterator[None]:
    """Writes below ``out_dir`` fail (ENOTDIR), also for root; afterwards the directory is back."""
    aside = out_dir + ".aside"
    os.rename(out_dir, aside)
    with open(out_dir, "w") as f:
        f.write("not a directory\n")
    try:
        yield
    finally:
        os.unlink(out_dir)
        os.rename(aside, out_dir)


def test_a_failed_write_keeps_the_slots_stops_taking_and_retries_until_every_row_is_there_once(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    store = csv_store(out_dir, settings)
    writer.ensure_consumers(["store_csv"])
    index = writer.ring.find_consumer("store_csv")
    path = os.path.join(out_dir, "rows.csv")
    try:
        writer.write(payload(0))
        step(store)
        gc.collect()
        assert writer.ring.cursor(index) == 1 and numbers(path) == [0]

        with output_dir_replaced_by_a_file(out_dir):
            for n in (1, 2, 3):
                writer.write(payload(n))
            step(store)  # takes 1-3, the write fails
            assert store._writes.failing
            snapshot = store.counters.snapshot()
            assert snapshot["write_failing"] == 1 and snapshot["write_errors"] == 1
            assert "NotADirectoryError" in snapshot["last_error"], snapshot["last_error"]
            gc.collect()
            assert writer.ring.cursor(index) == 1, "slots given back although their rows were not written"

            # While failing, nothing more is taken: the producer fills the ring and is held back.
            for n in range(4, 4 + writer.ring.slot_count - 3):
                assert writer.write(payload(n)) is not None
            assert store._drain_ring(None) == 0
            assert writer.ring.write_seq - writer.ring.cursor(index) == writer.ring.slot_count
            # Retries fail while the directory is gone, with a growing backoff.
            wait_for(lambda: (step(store), store.counters.write_errors >= 3)[1], 5, "two failed retries")
            assert store._writes.delay == pytest.approx(RETRY_FIRST_SECONDS * 4)
            gc.collect()
            assert writer.ring.cursor(index) == 1

        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry after the repair")
        assert store.counters.write_failing == 0
        wait_for(lambda: (step(store), numbers(path) == list(range(writer.ring.write_seq)))[1], 5, "all rows")
        gc.collect()
        assert writer.ring.cursor(index) == writer.ring.write_seq
    finally:
        store.free()


class DAQJobStoreFlaky(DAQJobStore):
    """A custom store of the original API: writes in ``handle_message``; its database is down for
    the first ``down_for`` attempts; ``bad`` values are a bug (ValueError), never retried."""

    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStorePyArrow]
    config_type = DAQJobConfig

    def __init__(self, config: Any, down_for: int, bad: int = -1, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.down_for = down_for
        self.bad = bad
        self.attempts = 0
        self.written: list[int] = []

    def handle_message(self, message: DAQJobMessage) -> bool:
        assert isinstance(message, DAQJobMessageStorePyArrow)
        n = message.get_table().column("n")[0].as_py()
        self.attempts += 1
        if self.attempts <= self.down_for:
            raise StoreWriteError("database at mysql://daq:hunter2@db/lab is down")
        if n == self.bad:
            raise ValueError("a bug in the store")
        self.written.append(n)
        message.release()
        return True


def test_a_custom_store_that_raises_store_write_error_gets_its_messages_again_in_order(
    ring: tuple[DataPlaneSettings, RingWriter],
) -> None:
    settings, writer = ring
    store = DAQJobStoreFlaky(
        DAQJobConfig(daq_job_type="DAQJobStoreFlaky", daq_job_unique_id="flaky"), down_for=3, bad=4
    )
    store.configure_data_plane(settings)
    writer.ensure_consumers(["flaky"])
    index = writer.ring.find_consumer("flaky")
    try:
        for n in range(6):
            writer.write(payload(n))
        step(store)
        assert store._writes.failing and store.written == []
        assert "hunter2" not in (store.counters.last_error or ""), "a password in status"
        wait_for(lambda: (step(store), len(store.written) == 5)[1], 10, "the store to write after 3 failures")
        assert store.written == [0, 1, 2, 3, 5], "order kept, the failed message retried first"
        assert store.counters.failed == 1, "the bug (ValueError) is counted, not retried"
        assert store.counters.write_errors == 3 and store.counters.write_failing == 0
        gc.collect()
        assert writer.ring.cursor(index) == 6
    finally:
        store.free()


def test_a_failed_final_write_is_raised_and_its_payloads_stay_in_the_ring_for_the_next_run(
    ring: tuple[DataPlaneSettings, RingWriter], tmp_path: Any
) -> None:
    settings, writer = ring
    out_dir = str(tmp_path / "out")
    os.makedirs(out_dir)
    writer.ensure_consumers(["store_csv"])
    index = writer.ring.find_consumer("store_csv")
    store = csv_store(out_dir, settings)
    for n in range(3):
        writer.write(payload(n))
    with output_dir_replaced_by_a_file(out_dir):
        step(store)
        assert store._writes.failing
        with pytest.raises(StoreWriteError, match="3 message"):
            store.free()  # a stop (not for good) while the directory is gone
        del store
        gc.collect()
        assert writer.ring.cursor(index) == 0, "the stop gave back slots whose rows were never written"

    again = csv_store(out_dir, settings)  # the next run of the store
    try:
        step(again)
        assert numbers(os.path.join(out_dir, "rows.csv")) == [0, 1, 2]
    finally:
        again.free()


def test_error_text_masks_credentials_and_is_one_short_line() -> None:
    text = error_text(StoreWriteError("connect to postgresql://daq:s3cret@db:5432/x failed\npassword=abc"))
    assert "s3cret" not in text and "abc" not in text and "\n" not in text
    assert text.startswith("StoreWriteError: connect to postgresql://daq:***@db")
    assert len(error_text(OSError("x" * 1000))) <= 300


@pytest.fixture
def small_tmpfs(tmp_path: Any) -> Iterator[str]:
    mount_point = str(tmp_path / "small")
    os.makedirs(mount_point)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount_point], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], check=False)


def test_a_write_cut_short_by_a_full_disk_leaves_no_partial_row_and_the_retry_writes_each_row_once(
    small_tmpfs: str,
) -> None:
    path = os.path.join(small_tmpfs, "rows.csv")
    target = CSVFile(path, overwrite=False, use_zstd=False)
    target.add(["n"], b"".join(b"%d\n" % n for n in range(10)), 10)
    target.write_out()
    before = os.path.getsize(path)
    big = b"".join(b"%08d\n" % n for n in range(10, 20_000))  # 180 kB: does not fit in 64 kB
    target.add(["n"], big, 19_990)
    with pytest.raises(OSError):
        target.write_out()
    assert os.path.getsize(path) == before, "a partial write was left in the file"
    assert target.pending

    subprocess.run(["mount", "-o", "remount,size=1m", small_tmpfs], check=True)
    target.write_out()
    assert not target.pending
    assert numbers(path) == list(range(20_000))
