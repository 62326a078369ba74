"""A run that falls silent without dying (a frozen process: SIGSTOP stands for a loaded machine or
a long call that holds the GIL) is never run a second time beside itself: on its own host it is
waited for, and killed before it is restarted once it stays silent; a run on another host that
finds itself declared dead ends at once, writing nothing more."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from enrgdaq.control.reconcile import WEDGED_SECONDS
from tests.harness.system import DAQSystem
from tests.harness.waiting import stays, wait_for
from tests.system.test_restarts import OverlapWatcher, life_job, rerun

pytestmark = pytest.mark.system


def lease_held(system: DAQSystem, unique_id: str) -> bool:
    return bool(system.registry.leases([unique_id])[unique_id])


def test_a_run_frozen_past_its_lease_is_not_restarted_and_takes_its_lease_back(system: DAQSystem) -> None:
    life_job(system)
    system.start_all(queues=("default",))
    first = system.wait_state("life", "running")
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not lease_held(system, "life"), 10, "the frozen run's lease to run out")
        stays(
            lambda: (r := system.job("life")).state.value == "running" and r.task_id == first.task_id,
            2.0,
            "the frozen run to stay the job's run (no restart beside it)",
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: lease_held(system, "life"), 10, "the run to take its lease back")
    record = system.job("life")
    assert (record.state.value, record.task_id, record.restarts) == ("running", first.task_id, 0)


def test_a_run_frozen_for_good_is_killed_then_restarted_never_beside_itself(system: DAQSystem) -> None:
    life_dir = life_job(system)
    system.start_all(queues=("default",))
    first = system.wait_state("life", "running")
    assert first.pid is not None
    watcher = OverlapWatcher(life_dir)
    wait_for(lambda: watcher.alive_instances() == 1, 10, "the first run to mark itself alive")
    watcher.start()
    try:
        os.kill(first.pid, signal.SIGSTOP)
        wait_for(lambda: _gone(first.pid), WEDGED_SECONDS + 10, "the kill")
        again = rerun(system, "life", first.task_id, timeout=20)
        wait_for(lambda: watcher.alive_instances() == 1, 10, "the new run to mark itself alive")
    finally:
        max_alive = watcher.stop()
    assert again.restarts == 1 and again.pid != first.pid
    assert max_alive == 1, f"{max_alive} runs of the job were alive at once"
    assert f"process {first.pid}" in again.last_error and "killed" in again.last_error, again.last_error


def test_a_run_on_another_host_declared_dead_ends_at_once_when_it_wakes(system: DAQSystem) -> None:
    life_dir = life_job(system)
    system.start_all(queues=("default",))
    first = system.wait_state("life", "running")
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)
    try:
        # As the supervisor sees a run on another node: it cannot look at its process.
        system.registry.redis.hset(system.registry.keys.job("life"), "hostname", "another-node")
        wait_for(
            lambda: (r := system.job("life")).task_id != first.task_id or r.state.value != "running",
            15,
            "the silent run to be declared dead",
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: _gone(first.pid), 5, "the woken run to end itself")
    with open(os.path.join(life_dir, "events.log")) as f:
        stops = [line for line in f if line.startswith(f"stop {first.pid} ")]
    assert not stops, "the run that lost its lease went on to its clean stop instead of ending at once"
    again = rerun(system, "life", first.task_id, timeout=20)
    assert "lease expired" in again.last_error, again.last_error


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
