"""Crashes heal themselves: kill -9 of a job, of a worker; a queue without a worker; schedules
that survive the supervisor and Redis."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from tests.harness.system import DAQSystem
from tests.harness.waiting import stays, wait_for

pytestmark = pytest.mark.system


class OverlapWatcher(threading.Thread):
    """Counts, every few ms, the instances of a job whose process is alive."""

    def __init__(self, life_dir: str) -> None:
        super().__init__(daemon=True)
        self.life_dir = life_dir
        self.max_alive = 0
        self._halt = threading.Event()

    def alive_instances(self) -> int:
        count = 0
        for name in os.listdir(self.life_dir) if os.path.isdir(self.life_dir) else []:
            if name.endswith(".alive"):
                try:
                    if psutil.Process(int(name.split(".")[0])).status() != psutil.STATUS_ZOMBIE:
                        count += 1
                except psutil.NoSuchProcess:
                    pass
        return count

    def run(self) -> None:
        while not self._halt.wait(0.003):
            self.max_alive = max(self.max_alive, self.alive_instances())

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.max_alive


def life_job(system: DAQSystem, name: str = "life", job_type: str = "DAQJobLifeLog", extra: str = "") -> str:
    life_dir = os.path.join(system.base, f"life-{name}")
    system.write(
        f"{name}.toml",
        f"""
        daq_job_type = "{job_type}"
        log_dir = "{life_dir}"
        {extra}
    """,
    )
    return life_dir


def rerun(system: DAQSystem, unique_id: str, old_task_id: str, timeout: float = 20):
    """The job running again as a new run (a new task; possibly in the same pool child)."""

    def again():
        record = system.registry.get(unique_id)
        return (
            record if record and record.state.value == "running" and record.task_id != old_task_id else None
        )

    return wait_for(again, timeout, f"{unique_id} running again", interval=0.002)


def test_kill_9_of_a_job_process_restarts_it_within_offset_and_never_twice(system: DAQSystem) -> None:
    life_dir = life_job(system)
    system.start_all(queues=("default",))
    first = system.wait_state("life", "running")
    watcher = OverlapWatcher(life_dir)
    watcher.start()

    killed_at = time.monotonic()
    os.kill(first.pid, signal.SIGKILL)
    second = rerun(system, "life", first.task_id)
    elapsed = time.monotonic() - killed_at
    wait_for(lambda: watcher.alive_instances() == 1, 5, "the new instance to mark itself alive")

    assert watcher.stop() <= 1, "two instances of the job ran at the same time"
    # restart_offset plus detection, dispatch and start; 1.5 s of room for a loaded CI machine
    assert elapsed <= 2.0 + 1.5, f"running again {elapsed:.2f} s after kill -9 (restart_offset 2 s)"
    assert second.restarts == 1
    assert "process" in system.job("life").error or second.error == ""


def test_kill_9_of_a_whole_worker_runs_the_job_again_once_a_worker_is_back(system: DAQSystem) -> None:
    life_job(system)
    system.start_supervisor().wait_ready()
    system.start_beat()
    worker = system.start_worker("default").wait_ready()
    first = system.wait_state("life", "running")

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    wait_for(
        lambda: not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie",
        5,
        "the job's process to die with its worker",
    )
    system.wait_state("life", "waiting", timeout=10)
    stays(lambda: system.job("life").state.value == "waiting", 2.0, "the job waiting without a worker")

    replacement = system.start_worker("default", name="w-default-2").wait_ready()
    second = rerun(system, "life", first.task_id)
    assert psutil.Process(second.pid).ppid() == replacement.pid


def test_a_job_on_the_caen_queue_waits_for_a_caen_worker(system: DAQSystem) -> None:
    life_job(system, extra='queue = "caen"')
    system.start_all(queues=("default", "store"))
    system.wait_state("life", "waiting")
    stays(lambda: system.job("life").state.value == "waiting", 3.0, "the caen job waiting")

    caen = system.start_worker("caen").wait_ready()
    record = system.wait_state("life", "running", timeout=20)
    assert psutil.Process(record.pid).ppid() == caen.pid


def test_a_pending_restart_survives_a_kill_of_the_supervisor_and_a_restart_of_redis(
    system: DAQSystem,
) -> None:
    # DAQJobSlowRestart: restart_offset 6 s; it crashes 0.5 s after it starts.
    life_job(system, job_type="DAQJobSlowRestart", extra="crash_after_seconds = 0.5")
    supervisor = system.start_supervisor().wait_ready()
    system.start_beat()
    system.start_worker("default").wait_ready()
    crashed = system.wait_state("life", "restart_scheduled")
    assert crashed.restart_at is not None and crashed.ended_at is not None
    assert crashed.restart_at - crashed.ended_at == pytest.approx(6.0, abs=0.05)

    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(10)
    system.redis.restart()
    assert system.job("life").restart_at == pytest.approx(crashed.restart_at, abs=1e-3)
    system.start_supervisor(name="supervisor-2").wait_ready()

    record = rerun(system, "life", crashed.task_id)
    started = record.started_at
    assert started is not None
    assert crashed.restart_at - 0.05 <= started <= crashed.restart_at + 1.5, (
        f"restarted at {started - crashed.restart_at:+.2f} s from its schedule"
    )


def test_a_killed_job_on_another_host_is_noticed_by_the_task_failed_event(system: DAQSystem) -> None:
    life_job(system)
    system.start_supervisor().wait_ready()
    system.start_beat()
    system.start_worker("default", extra_env={"ENRGDAQ_HOSTNAME": "another-host"}).wait_ready()
    first = system.wait_state("life", "running")
    assert first.hostname == "another-host"

    os.kill(first.pid, signal.SIGKILL)
    crashed = system.wait_state("life", "restart_scheduled", timeout=5)
    # The supervisor cannot see another host's processes; the event came before the lease ran out.
    assert "WorkerLostError" in crashed.error or "exited prematurely" in crashed.error, crashed.error
    rerun(system, "life", first.task_id)
