"""Config problems the file alone cannot show: found when the job starts, or by an edit while it runs."""

from __future__ import annotations

import os

import pytest

from enrgdaq.control.lifecycle import JobState
from tests.harness.system import DAQSystem
from tests.harness.waiting import stays, wait_for

pytestmark = pytest.mark.system


def needs_file(system: DAQSystem, path: str) -> None:
    system.write("calib.toml", f'daq_job_type = "DAQJobNeedsFile"\nneeds = "{path}"\n')


def test_a_config_error_at_start_is_not_retried_and_a_fixed_file_runs(system: DAQSystem, tmp_path) -> None:
    needs_file(system, str(tmp_path / "missing.json"))
    system.start_all(queues=("default",))

    crashed = system.wait_state("calib", JobState.CRASHED.value, timeout=30)
    assert "calibration file" in crashed.error and "missing.json" in crashed.error
    # restart_offset is 2 s: a crash loop would have restarted it twice in this window.
    stays(
        lambda: system.job("calib").state is JobState.CRASHED and system.job("calib").restarts == 0,
        5.0,
        "the job to stay crashed, not restarted",
    )

    present = tmp_path / "present.json"
    present.write_text("{}")
    needs_file(system, str(present))  # the operator fixes the file; nothing is restarted by hand
    system.wait_state("calib", JobState.RUNNING.value, timeout=30)


def test_an_edit_that_breaks_a_running_jobs_file_keeps_the_job_running(system: DAQSystem, tmp_path) -> None:
    present = tmp_path / "present.json"
    present.write_text("{}")
    needs_file(system, str(present))
    system.start_all(queues=("default",))
    running = system.wait_state("calib", JobState.RUNNING.value, timeout=30)

    system.write("calib.toml", 'daq_job_type = "DAQJobNeedsFile"\nneeds = = 1\n')  # half-saved
    problems = system.registry.redis
    wait_for(
        lambda: any("calib.toml" in v for v in problems.hgetall(system.registry.keys.problems).values()),
        20,
        "the broken file to be reported",
    )
    again = system.job("calib")
    assert again.state is JobState.RUNNING and again.task_id == running.task_id
    assert os.path.exists(present)


def test_a_new_file_claiming_a_running_jobs_id_is_the_duplicate_whatever_its_name(
    system: DAQSystem, tmp_path
) -> None:
    present = tmp_path / "present.json"
    present.write_text("{}")
    system.write(
        "z_calib.toml",
        f'daq_job_type = "DAQJobNeedsFile"\ndaq_job_unique_id = "calib"\nneeds = "{present}"\n',
    )
    system.start_all(queues=("default",))
    running = system.wait_state("calib", JobState.RUNNING.value, timeout=30)

    # Sorts first, but the id is held by z_calib.toml in the running system.
    intruder = system.write(
        "a_calib.toml",
        'daq_job_type = "DAQJobNeedsFile"\ndaq_job_unique_id = "calib"\nneeds = "/nonexistent"\n',
    )
    problems = system.registry.redis

    def reported() -> list[str]:
        found = problems.hgetall(system.registry.keys.problems).values()
        return [v for v in found if intruder in v and "already used by" in v]

    [problem] = wait_for(reported, 20, "the new file to be reported as the duplicate")
    assert "z_calib.toml" in problem
    again = system.job("calib")
    assert again.config_file.endswith("z_calib.toml")
    assert again.state is JobState.RUNNING and again.task_id == running.task_id
