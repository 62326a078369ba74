"""A lab's own job, written against the original API, run by ``enrgdaq up`` as a user would.

The plugin module lies next to the TOML files and puts its job on a queue of
its own; ``up`` must find it, start a worker for that queue, and the job's rows
must reach the CSV store exactly once even when the store is killed -9 mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import uuid

import pytest

from tests.harness.leaks import live_children
from tests.harness.system import DAQSystem, csv_rows
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

ROWS = 400

PLUGIN = """
import math
import time

import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig


class LabCounterConfig(StorableDAQJobConfig):
    rows: int


class LabCounter(DAQJob):
    config_type = LabCounterConfig
    queue = "lab"

    def start(self):
        due = time.monotonic()
        for seq in range(self.config.rows):
            table = pa.table({"seq": [seq], "channel": [7]})
            message = DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=table)
            self._put_message_out(message)
            due += 0.02  # 50 rows a second, paced by the job API (ends at once on a stop)
            if not self.sleep_until(due):
                return
        self.sleep_until(math.inf)  # all sent: idle until stopped
"""


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip())


def lab_config_dir(workdir: str, supervisor_id: str, plugins: str = '["lab_counter_jobs"]') -> str:
    configs = os.path.join(workdir, "configs")
    os.makedirs(configs)
    write(os.path.join(configs, "lab_counter_jobs.py"), PLUGIN)
    write(
        os.path.join(configs, "supervisor.toml"),
        f"""
        plugins = {plugins}
        [info]
        supervisor_id = "{supervisor_id}"
        """,
    )
    write(
        os.path.join(configs, "counter.toml"),
        f"""
        daq_job_type = "LabCounter"
        rows = {ROWS}
        [store_config.csv]
        file_path = "counts.csv"
        """,
    )
    write(os.path.join(configs, "store_csv.toml"), 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\n')
    return configs


def jobs(workdir: str) -> dict[str, dict[str, object]]:
    done = enrgdaq(workdir, "status", "--json")
    if done.returncode != 0:
        return {}
    return {str(j["unique_id"]): j for j in json.loads(done.stdout)["jobs"]}


def test_a_plugin_job_on_its_own_queue_runs_under_up_and_survives_a_killed_store(tmp_path) -> None:
    workdir = str(tmp_path)
    lab_config_dir(workdir, f"lab-{uuid.uuid4().hex[:8]}")
    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stderr
    assert "LabCounter 'counter' on queue 'lab'" in check.stdout

    up = start_up(workdir, "--quiet")
    try:
        out = os.path.join(workdir, "out")
        wait_for(lambda: len(csv_rows(out)) >= 60, 60, "the plugin job's first rows on disk")
        store = jobs(workdir)["store_csv"]
        assert jobs(workdir)["counter"]["queue"] == "lab"
        os.kill(int(str(store["pid"])), signal.SIGKILL)
        wait_for(
            lambda: (j := jobs(workdir).get("store_csv")) and j["state"] == "running" and j["restarts"] >= 1,
            30,
            "the killed store to run again",
        )
        wait_for(lambda: len(csv_rows(out)) >= ROWS, 60, f"all {ROWS} rows on disk")
        with open(os.path.join(workdir, "up.out")) as f:
            said = f.read()
        assert "unknown daq_job_type" not in said
        assert "lab (1 job)" in said, said
    finally:
        code = stop_up(up, timeout=60)
    assert code == 0
    seqs = sorted(int(row[0]) for row in csv_rows(os.path.join(workdir, "out")))
    assert seqs == list(range(ROWS)), "every row exactly once"
    assert not live_children()


def test_a_broken_plugin_affects_only_its_jobs_and_is_no_phantom_job(tmp_path) -> None:
    workdir = str(tmp_path)
    configs = lab_config_dir(workdir, f"lab-{uuid.uuid4().hex[:8]}", '["lab_counter_jobs", "lab_broken"]')
    write(os.path.join(configs, "lab_broken.py"), "raise ImportError('libCAENComm.so: not found')\n")
    write(
        os.path.join(configs, "digitizer.toml"),
        'daq_job_type = "LabDigitizer"\n',
    )
    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 1
    assert "plugin module 'lab_broken' failed to import" in check.stderr
    assert "digitizer.toml" in check.stderr and "LabDigitizer" in check.stderr

    up = start_up(workdir, "--quiet")
    try:
        wait_for(lambda: len(csv_rows(os.path.join(workdir, "out"))) >= 5, 60, "the good plugin job's rows")
        shown = jobs(workdir)
        assert set(shown) == {"counter", "store_csv", "digitizer"}, "no job named after supervisor.toml"
        assert shown["digitizer"]["state"] == "crashed"
        assert "lab_broken" in str(shown["digitizer"]["error"])
        table = enrgdaq(workdir, "status").stdout
        assert "plugin module 'lab_broken' failed to import" in table
    finally:
        code = stop_up(up, timeout=60)
    assert code == 0
    assert not live_children()


def test_a_plugin_next_to_the_toml_files_runs_under_plain_celery_workers(system: DAQSystem) -> None:
    """What compose runs: ``celery -A enrgdaq worker -Q lab`` with ENRGDAQ_CONFIG_DIR set and the
    config directory mounted, nothing on PYTHONPATH that finds the plugin."""
    write(os.path.join(system.config_dir, "lab_counter_jobs.py"), PLUGIN)
    system.write(
        "supervisor.toml",
        f"""
        plugins = ["enrgdaq_testjobs", "lab_counter_jobs"]
        [info]
        supervisor_id = "{system.supervisor_id}"
        """,
    )
    system.write(
        "counter.toml", 'daq_job_type = "LabCounter"\nrows = 20\n[store_config.csv]\nfile_path = "c.csv"\n'
    )
    system.csv_store()
    assert system.config_dir not in system.env["PYTHONPATH"].split(os.pathsep)
    system.start_all(queues=("lab", "store"))

    wait_for(
        lambda: len(csv_rows(system.out_dir)) >= 20, 30, f"the plugin job's rows (logs in {system.log_dir})"
    )
    assert system.job("counter").queue == "lab"
