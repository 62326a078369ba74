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
