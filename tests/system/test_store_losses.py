"""A store that cannot write, or that restarts, loses no row: its producer's payloads wait in the
ring (the producer is held back once it is full), and every row reaches the file once.

Writes are made to fail by replacing the CSV store's output directory with a regular file of the
same name: that fails for root too (which ignores permission bits), needs no mount, and is undone
by renaming the directory back.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.system import DAQSystem, csv_rows
from tests.harness.waiting import stays, wait_for
from tests.system.test_policies import enrgdaq
from tests.system.test_restarts import rerun

pytestmark = pytest.mark.system


def sequence_producer(system: DAQSystem, rate_hz: int) -> None:
    system.write(
        "seq.toml",
        f"""
        daq_job_type = "DAQJobSequence"
        rate_hz = {rate_hz}
        [store_config.csv]
        file_path = "seq.csv"
    """,
    )


def status_of(system: DAQSystem) -> dict[str, dict[str, Any]]:
    result = enrgdaq(system, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {job["unique_id"]: job for job in json.loads(result.stdout)["jobs"]}


@contextlib.contextmanager
def output_dir_replaced_by_a_file(out_dir: str) -> Iterator[None]:
    aside = out_dir.rstrip("/") + ".aside"
    os.rename(out_dir, aside)
    with open(out_dir, "w") as f:
        f.write("the output directory is gone\n")
    try:
        yield
    finally:
        os.unlink(out_dir)
        os.rename(aside, out_dir)


def stop_producer_and_read_every_row(system: DAQSystem) -> tuple[int, list[int]]:
    """Stop the producer; once the store has written all it sent: (sent, sequence numbers on disk)."""
    assert enrgdaq(system, "stop", "seq").returncode == 0
    system.wait_state("seq", "stopped", timeout=15)
    sent = int(system.job("seq").stats_dict["sent"])
    path = os.path.join(system.out_dir, "seq.csv")

    def every_row_written() -> list[int] | None:
        with open(path, newline="") as f:
            text = f.read()
        if not text.endswith("\n"):
            return None  # read in the middle of an append
        rows = [int(r[0]) for r in csv.reader(text.splitlines()) if r and not r[0].isalpha()]
        return rows if len(set(rows)) >= sent else None  # every number (rows are never above sent)

    rows = wait_for(
        every_row_written,
        30,
        f"the {sent} rows sent to be on disk (the file stays short when rows were lost)",
    )
    return sent, rows


def test_an_unwritable_output_directory_stalls_the_store_holds_the_producer_and_loses_no_row(
    system: DAQSystem,
) -> None:
    # A small ring (16 slots of 64 KiB) fills in a fraction of a second at 100 rows/s.
    system.write_supervisor(
        """
        ring_buffer_size_mb = 1
        ring_buffer_slot_size_kb = 64
        ring_block_timeout_seconds = 0.5
        """
    )
    sequence_producer(system, rate_hz=100)
    system.csv_store()
    system.start_all()
    wait_for(lambda: len(csv_rows(system.out_dir)) >= 50, 30, "50 rows on disk")

    with output_dir_replaced_by_a_file(system.out_dir):
        jobs = wait_for(
            lambda: (
                (found := status_of(system))["store_csv"]["state"] == "stalled"
                and found["seq"]["data"].get("ring_occupancy", 0) >= found["seq"]["data"].get("ring_slots", 1)
                and found
            ),
            30,
            "status to show the store stalled and the producer's ring full",
            interval=0.2,
        )
        store, producer = jobs["store_csv"], jobs["seq"]
        assert "NotADirectoryError" in store["error"], store
        assert store["data"]["write_failing"] == 1 and store["data"]["write_errors"] >= 1, store
        assert store["restarts"] == 0, "the store crashed instead of holding its data"
        assert producer["data"]["ring_dropped"] == 0 and producer["data"]["unrouted"] == 0, producer
        table = enrgdaq(system, "status").stdout
        assert "stalled" in table and "store_csv: NotADirectoryError" in table, table
        assert "data: store_csv: cannot write" in table and "data: seq: ring full (16 slots)" in table, table

        # Held back: the producer sends nothing more while its ring is full (stats: every second).
        blocked_at = system.job("seq").stats_dict["sent"]
        stays(
            lambda: system.job("seq").stats_dict["sent"] <= blocked_at + 1,
            2.5,
            "the producer held back by its full ring",
        )

    wait_for(lambda: status_of(system)["store_csv"]["state"] == "running", 30, "the store to write again")
    wait_for(
        lambda: system.job("seq").stats_dict.get("ring_blocked_ms", 0) >= 2000,
        10,
        "the producer's stats to count the time it waited for its ring",
    )
    wait_for(
        lambda: system.job("seq").stats_dict["sent"] >= blocked_at + 200,
        30,
        "the producer to go on once the store writes again",
    )
    sent, seqs = stop_producer_and_read_every_row(system)
    assert seqs == list(range(sent)), "a row missing, written twice, or out of order"
    with open(os.path.join(system.out_dir, "seq.csv"), newline="") as f:
        assert f.read().count("seq,value") == 1, "the header was written again"
    assert system.job("store_csv").restarts == 0


def test_kill_9_of_the_store_loses_no_row_of_a_producer_that_keeps_sending(system: DAQSystem) -> None:
    # 512 slots: at 100 rows/s the ring holds 5 s, more than the store's restart (2 s offset),
    # so the producer is never held back: it keeps sending while the store is away.
    system.write_supervisor(
        """
        ring_buffer_size_mb = 8
        ring_buffer_slot_size_kb = 16
        """
    )
    sequence_producer(system, rate_hz=100)
    system.csv_store()
    system.start_all()
    wait_for(
        lambda: (
            len(csv_rows(system.out_dir)) >= 300
            and system.job("seq").stats_dict.get("ring_occupancy", 99) <= 2
        ),
        30,
        "300 rows on disk, the store keeping up",
    )

    first = system.wait_state("store_csv", "running")
    os.kill(first.pid, signal.SIGKILL)
    system.wait_state("store_csv", "restart_scheduled", timeout=5)
    sent_at_kill = len(csv_rows(system.out_dir))
    rerun(system, "store_csv", first.task_id)
    wait_for(
        lambda: len(csv_rows(system.out_dir)) >= sent_at_kill + 400,
        30,
        "the restarted store to write what was sent meanwhile, and more",
    )

    sent, seqs = stop_producer_and_read_every_row(system)
    missing = sorted(set(range(sent)) - set(seqs))
    assert not missing, f"{len(missing)} row(s) lost across the store's restart, from {missing[:5]}"
    # Exactly once: rows written just before the kill whose slots were not given back yet are
    # skipped by the restarted store (its write journal, tests/system/test_exactly_once.py).
    twice = [seq for seq, count in Counter(seqs).items() if count > 1]
    assert not twice, f"{len(twice)} rows written twice"
    producer = system.job("seq").stats_dict
    assert producer["unrouted"] == 0 and producer.get("ring_dropped", 0) == 0, producer
    assert system.job("store_csv").stats_dict.get("ring_lost") == 0
