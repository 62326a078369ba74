"""From a config directory to rows on disk, through real workers and the real proxy."""

from __future__ import annotations

import os

import pytest

from enrgdaq.data.ring import Ring
from enrgdaq.data.settings import ring_path
from tests.harness.system import DAQSystem, csv_rows
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system


def test_config_dir_to_rows_on_disk(system: DAQSystem) -> None:
    system.write(
        "producer.toml",
        """
        daq_job_type = "DAQJobTest"
        rand_min = 10
        rand_max = 20
        rate_hz = 20
        [store_config.csv]
        file_path = "random.csv"
    """,
    )
    system.csv_store()
    system.start_all()

    rows = wait_for(
        lambda: len(csv_rows(system.out_dir)) >= 10 and csv_rows(system.out_dir),
        20,
        "10 rows in the CSV file",
    )
    with open(os.path.join(system.out_dir, "random.csv")) as f:
        assert f.readline().strip() == "timestamp,A,B,C"
    for row in rows:
        assert all(10 <= int(v) <= 20 for v in row[1:]), row
    producer = system.job("producer")
    assert producer.state.value == "running" and producer.queue == "default"
    assert system.job("store_csv").queue == "store"

    # The rows came through the producer's ring, not inline over ZMQ.
    ring = Ring.attach(ring_path(system.run_dir, "producer"))
    try:
        index = ring.find_consumer("store_csv")
        assert index is not None, "the CSV store has no cursor in the producer's ring"
        written = len(csv_rows(system.out_dir))
        wait_for(lambda: ring.cursor(index) >= written, 10, "the store's cursor to pass what is on disk")
    finally:
        ring.close()
    stats = wait_for(
        lambda: (s := system.job("producer").stats_dict).get("ring_write_seq", 0) >= written and s,
        10,
        "the producer's stats to show its ring",
    )
    assert stats["ring_dropped"] == 0 and stats["ring_slots"] > 0
    store_stats = system.job("store_csv").stats_dict
    assert store_stats.get("ring_lost") == 0 and store_stats.get("ring_corrupted") == 0, store_stats


def test_a_store_stuck_in_a_long_write_is_not_evicted_and_loses_nothing(system: DAQSystem) -> None:
    # A tiny ring, short timeouts: the producer fills the ring while the store's disk stalls 3 s.
    system.write_supervisor(
        """
        ring_buffer_size_mb = 1
        ring_buffer_slot_size_kb = 256
        ring_block_timeout_seconds = 0.3
        ring_consumer_timeout_seconds = 1
        """
    )
    system.write(
        "seq.toml",
        """
        daq_job_type = "DAQJobSequence"
        rate_hz = 100
        [store_config.csv]
        file_path = "seq.csv"
    """,
    )
    system.write(
        "slow_csv.toml",
        f"""
        daq_job_type = "DAQJobStoreSlowCSV"
        out_dir = "{system.out_dir}/"
        stall_after = 50
        stall_seconds = 3.0
    """,
    )
    system.start_all()
    wait_for(lambda: len(csv_rows(system.out_dir)) >= 600, 60, "600 rows on disk, well after the stall")

    seqs = [int(row[0]) for row in csv_rows(system.out_dir)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate in the CSV file"
    # Stats are written every second: wait for them to catch up with the burst after the stall.
    wait_for(
        lambda: system.job("seq").stats_dict.get("ring_blocked_ms", 0) >= 1000,
        10,
        "the producer's stats to show that it waited for the stalled store",
    )
    store = wait_for(
        lambda: (found := system.job("slow_csv").stats_dict).get("processed", 0) >= len(seqs) and found,
        10,
        "the store's stats to count every row",
    )
    assert store["ring_lost"] == 0, store
    assert "evicted" not in system.logs()
