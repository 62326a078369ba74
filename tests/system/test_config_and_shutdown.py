"""A broken file among good ones; SIGTERM of a store's worker loses no row it received."""

from __future__ import annotations

import json
import signal

import pytest

from tests.harness.system import DAQSystem, csv_rows
from tests.harness.waiting import wait_for
from tests.system.test_policies import enrgdaq

pytestmark = pytest.mark.system


def test_a_broken_file_among_good_ones_is_reported_and_the_good_ones_run(system: DAQSystem) -> None:
    system.write(
        "producer.toml",
        """
        daq_job_type = "DAQJobTest"
        rand_min = 1
        rand_max = 9
        rate_hz = 20
        [store_config.csv]
        file_path = "good.csv"
    """,
    )
    system.csv_store()
    system.write(
        "typo.toml",
        """
        daq_job_type = "DAQJobTest"
        rand_min = 1
        rand_max = 9
        rate_hz = 20
        [store_config.csv]
        file_path = "typo.csv"
        add_dat = true
    """,
    )
    system.write("syntax.toml", 'daq_job_type = "DAQJobTest"\nrand_min = = 1\n')
    system.write("nosuch.toml", 'daq_job_type = "DAQJobNoSuchThing"\n')
    system.start_all()

    wait_for(lambda: len(csv_rows(system.out_dir)) >= 5, 20, "rows from the good producer")
    status = json.loads(enrgdaq(system, "status", "--json").stdout)
    jobs = {j["unique_id"]: j for j in status["jobs"]}
    assert jobs["producer"]["state"] == "running" and jobs["store_csv"]["state"] == "running"
    assert jobs["typo"]["state"] == "crashed"
    assert "typo.toml:7" in jobs["typo"]["error"] and "store_config.csv.add_dat" in jobs["typo"]["error"]
    assert jobs["syntax"]["state"] == "crashed" and "syntax.toml:2" in jobs["syntax"]["error"]
    assert "DAQJobNoSuchThing" in jobs["nosuch"]["error"]
    table = enrgdaq(system, "status").stdout
    assert "typo" in table and "add_dat" in table


def test_sigterm_of_a_store_worker_keeps_every_row_it_received(system: DAQSystem) -> None:
    system.write(
        "seq.toml",
        """
        daq_job_type = "DAQJobSequence"
        rate_hz = 400
        [store_config.csv]
        file_path = "seq.csv"
    """,
    )
    system.csv_store()
    system.start_supervisor().wait_ready()
    system.start_beat()
    system.start_worker("default").wait_ready()
    store_worker = system.start_worker("store").wait_ready()
    wait_for(lambda: len(csv_rows(system.out_dir)) >= 400, 30, "400 rows on disk")

    store_worker.signal(signal.SIGTERM)
    assert store_worker.wait(20) == 0, store_worker.log()[-3000:]

    seqs = [int(row[0]) for row in csv_rows(system.out_dir)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate in the CSV file"
    received = system.job("store_csv").stats_dict["processed"]
    assert received == len(seqs), f"the store received {received} rows, the file holds {len(seqs)}"
    assert "worker shutting down" in store_worker.log()
