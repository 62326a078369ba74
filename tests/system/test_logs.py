"""A job's log outlives its process: after a crash, ``enrgdaq logs`` shows the traceback that
ended it, read from Redis (not from the worker that ran it)."""

from __future__ import annotations

import json

import pytest

from tests.harness.system import DAQSystem
from tests.system.test_policies import enrgdaq

pytestmark = pytest.mark.system


def test_a_crashed_jobs_traceback_is_in_its_log_and_the_supervisor_log_says_what_followed(
    system: DAQSystem,
) -> None:
    system.write(
        "life.toml",
        f"""
        daq_job_type = "DAQJobLifeLog"
        log_dir = "{system.base}/life"
        crash_after_seconds = 0.5
        restart_on_crash = false
    """,
    )
    system.start_all(queues=("default",))
    system.wait_state("life", "crashed")

    done = enrgdaq(system, "logs", "life", "-n", "50")
    assert done.returncode == 0, done.stderr
    assert "[life] running DAQJobLifeLog" in done.stdout
    assert "RuntimeError: DAQJobLifeLog crashed on purpose" in done.stdout
    assert "Traceback (most recent call last)" in done.stdout
    assert "run ended (crashed) -> crashed" in done.stdout

    lines = [json.loads(x) for x in enrgdaq(system, "logs", "life", "--json").stdout.splitlines()]
    crashed = [x for x in lines if "crashed on purpose" in x["message"]]
    assert crashed and crashed[0]["level"] == "ERROR" and crashed[0]["source"] == "life", crashed

    node = enrgdaq(system, "logs", "_node", "-n", "500").stdout
    assert "[life] dispatched to queue 'default'" in node, node[-2000:]
