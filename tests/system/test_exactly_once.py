"""A store killed -9 between writing rows and giving their ring slots back writes them once.

The moment is forced: the test store kills itself right after a write. Without the write
journal (enrgdaq/daq/store/journal.py) the restarted store reads those slots again and every row
of that last write is in the file twice.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.harness.system import DAQSystem, csv_rows
from tests.harness.waiting import wait_for
from tests.system.test_store_losses import sequence_producer, stop_producer_and_read_every_row

pytestmark = pytest.mark.system


def test_a_store_killed_after_a_write_before_its_release_writes_every_row_once(
    system: DAQSystem, tmp_path
) -> None:
    marker = tmp_path / "killed"
    sequence_producer(system, rate_hz=200)
    system.write(
        "store_csv.toml",
        f"""
        daq_job_type = "DAQJobStoreKilledAfterWrite"
        out_dir = "{system.out_dir}/"
        kill_after_rows = 150
        marker = "{marker}"
        """,
    )
    system.start_all()
    wait_for(marker.exists, 30, f"the store to kill itself after a write (logs in {system.log_dir})")
    wait_for(
        lambda: system.job("store_csv").restarts >= 1 and system.job("store_csv").state.value == "running",
        30,
        "the store to run again",
    )
    wait_for(lambda: len(csv_rows(system.out_dir)) >= 500, 30, "rows written after the restart")

    sent, seqs = stop_producer_and_read_every_row(system)
    twice = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
    assert not twice, f"{len(twice)} row(s) written twice, from {twice[:5]}"
    assert seqs == list(range(sent)), "a row missing or out of order"
    assert not [n for n in os.listdir(system.run_dir) if n.startswith("journal-") and n.endswith(".tmp")]
