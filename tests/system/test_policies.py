"""Restart policy: backoff in a crash loop, restart_on_crash = false, a person's stop, duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from celery import Celery

from enrgdaq.control.operations import Operator
from tests.harness.system import DAQSystem
from tests.harness.waiting import stays, wait_for
from tests.system.test_restarts import life_job

pytestmark = pytest.mark.system


def enrgdaq(system: DAQSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "enrgdaq.cli.main",
            *args,
            "--redis-url",
            system.redis.url,
            "--supervisor",
            system.supervisor_id,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=system.env,
        check=False,
    )


def test_a_crash_loop_backs_off_doubling_up_to_the_cap(system: DAQSystem) -> None:
    system.write_supervisor("restart_backoff_max_seconds = 1.2")
    system.write("crashy.toml", 'daq_job_type = "DAQJobCrashLoop"\n')  # restart_offset 0.3 s
    system.start_all(queues=("default",))

    delays: dict[int, float] = {}

    def four_schedules() -> bool:
        record = system.job("crashy")
        if record.state.value == "restart_scheduled" and record.restart_at and record.ended_at:
            delays[record.restarts] = record.restart_at - record.ended_at
        return len(delays) >= 4

    wait_for(four_schedules, 30, "four restart schedules", interval=0.005)
    observed = [round(delays[n], 2) for n in sorted(delays)[:4]]
    assert observed == [0.3, 0.6, 1.2, 1.2], observed
    assert "crashed on purpose" in system.job("crashy").error


def test_restart_on_crash_false_leaves_a_crashed_job_crashed(system: DAQSystem) -> None:
    life_job(system, extra="crash_after_seconds = 0.3\nrestart_on_crash = false")
    system.start_all(queues=("default",))
    record = system.wait_state("life", "crashed")
    assert "crashed on purpose" in record.error
    stays(lambda: system.job("life").state.value == "crashed", 3.0, "the job to stay crashed")
    status = json.loads(enrgdaq(system, "status", "--json").stdout)
    (row,) = [j for j in status["jobs"] if j["unique_id"] == "life"]
    assert row["state"] == "crashed" and row["restart_at"] is None


def test_a_stop_asked_by_a_person_is_seen_within_a_second_and_never_undone(system: DAQSystem) -> None:
    life_dir = life_job(system)
    system.start_all(queues=("default",))
    system.wait_state("life", "running")

    # Timed from the request itself (what the CLI and the REST API call), not from the start of a
    # CLI process: its Python start-up alone can take most of a second on a loaded machine.
    asked = time.time()
    Operator(system.registry.redis, system.supervisor_id, actor="test").stop("life")
    system.wait_state("life", "stopped", timeout=5)
    with open(os.path.join(life_dir, "events.log")) as f:
        stopped_at = float([line for line in f if line.startswith("stop")][-1].split()[2])
    assert stopped_at - asked <= 1.0, f"the job saw the stop after {stopped_at - asked:.2f} s"
    stays(lambda: system.job("life").state.value == "stopped", 4.0, "the job to stay stopped")

    assert enrgdaq(system, "start", "life").returncode == 0
    system.wait_state("life", "running", timeout=10)


def test_a_second_delivery_of_a_running_job_exits_at_once(system: DAQSystem) -> None:
    life_dir = life_job(system)
    system.start_all(queues=("default",))
    running = system.wait_state("life", "running")

    app = Celery("probe", broker=system.redis.url)
    try:
        # The same message again (as a redelivery would be), and a stale dispatch of the job.
        app.send_task(
            "enrgdaq.run_daq_job",
            args=[system.supervisor_id, "life"],
            task_id=running.task_id,
            queue=f"default@{system.supervisor_id}",  # the node's queue on the wire (docs/nodes.md)
        )
        app.send_task(
            "enrgdaq.run_daq_job",
            args=[system.supervisor_id, "life"],
            queue=f"default@{system.supervisor_id}",
        )
    finally:
        app.close()
    worker = next(p for p in system.procs if p.name == "w-default")
    wait_for(
        lambda: "not started: duplicate" in worker.log() and "not started: stale" in worker.log(),
        15,
        "the redelivery to find the lease taken and the stale dispatch to be refused",
    )
    with open(os.path.join(life_dir, "events.log")) as f:
        assert sum(line.startswith("start") for line in f) == 1
    assert system.job("life").task_id == running.task_id
