"""The job registry's transitions, each one Lua script, on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from enrgdaq.control.lifecycle import JobState, Outcome
from enrgdaq.control.registry import LEASE_TTL_MS, JobRecord, JobRegistry
from tests.harness.redis_proc import RedisProcess
from tests.harness.waiting import wait_for

JOB = "job1"
OFFSET = 1.0


@pytest.fixture
def registry(redis_proc: RedisProcess) -> Iterator[JobRegistry]:
    client = redis_proc.client()
    yield JobRegistry(client, "unit")
    client.close()


def register(registry: JobRegistry, **fields) -> None:
    record = JobRecord(
        unique_id=JOB, daq_job_type="DAQJobTest", queue="default", restart_offset=OFFSET, **fields
    )
    registry.register(record)


def dispatch(registry: JobRegistry, task_id: str) -> None:
    """Take the job when it is due and mark it as waiting for ``task_id``."""
    due = registry.pending_restarts()[JOB]
    assert registry.take_due(due) == [JOB]
    assert registry.prepare_dispatch(JOB, task_id) == ("default", "DAQJobTest")


def run(registry: JobRegistry, task_id: str) -> float:
    """Dispatch and claim; returns the run's started_at."""
    dispatch(registry, task_id)
    assert registry.claim(JOB, task_id, 4242, "host-a") == "ok"
    started = state(registry).started_at
    assert started is not None
    return started


def state(registry: JobRegistry) -> JobRecord:
    record = registry.get(JOB)
    assert record is not None
    return record


class TestClaim:
    def test_register_take_due_prepare_dispatch_and_claim_give_a_starting_run(
        self, registry: JobRegistry
    ) -> None:
        register(registry)
        assert state(registry).state is JobState.REGISTERED

        assert registry.take_due(time.time() + 1) == [JOB]
        assert registry.prepare_dispatch(JOB, "task-1") == ("default", "DAQJobTest")
        assert state(registry).state is JobState.WAITING
        assert registry.claim(JOB, "task-1", 4242, "host-a") == "ok"

        record = state(registry)
        assert (record.state, record.task_id, record.pid, record.hostname) == (
            JobState.STARTING,
            "task-1",
            4242,
            "host-a",
        )
        assert registry.redis.get(registry.keys.lease(JOB)) == "task-1"
        assert registry.mark_running(JOB, "task-1") is True
        assert state(registry).state is JobState.RUNNING

    def test_a_job_is_not_due_before_its_time(self, registry: JobRegistry) -> None:
        register(registry)

        assert registry.take_due(time.time() - 60) == []
        assert registry.take_due(time.time() + 1) == [JOB]
        assert registry.take_due(time.time() + 1) == []  # taken once

    def test_a_second_claim_with_the_same_task_id_is_a_duplicate(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.claim(JOB, "task-1", 4343, "host-b") == "duplicate"
        assert state(registry).pid == 4242

    def test_a_claim_with_another_task_id_is_stale(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")

        assert registry.claim(JOB, "task-0", 4343, "host-b") == "stale"
        assert state(registry).state is JobState.WAITING

    def test_a_claim_after_request_stop_is_not_wanted(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")

        assert registry.request_stop(JOB, "operator") == "stopped"
        assert registry.claim(JOB, "task-1", 4242, "host-a") == "not_wanted"
        assert not registry.leases([JOB])[JOB]

    def test_a_claim_for_an_unknown_job_says_so(self, registry: JobRegistry) -> None:
        assert registry.claim("nobody", "task-1", 1, "h") == "unknown"

    def test_a_stopped_job_is_not_prepared_for_dispatch(self, registry: JobRegistry) -> None:
        register(registry)
        registry.request_stop(JOB, "operator")

        assert registry.prepare_dispatch(JOB, "task-1") is None


class TestRenew:
    def test_renew_is_ok_while_the_job_is_wanted(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.renew(JOB, "task-1") == "ok"
        assert registry.renew(JOB, "task-1") == "ok"

    def test_renew_says_stop_after_stop_run_of_that_task(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.stop_run(JOB, "task-1") is True
        assert registry.renew(JOB, "task-1") == "stop"

    def test_stop_run_of_another_task_changes_nothing(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.stop_run(JOB, "task-0") is False
        assert registry.renew(JOB, "task-1") == "ok"

    def test_renew_says_stop_after_request_stop(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.request_stop(JOB, "operator") == "stopping"
        assert registry.renew(JOB, "task-1") == "stop"

    def test_renew_by_a_task_that_does_not_hold_the_lease_is_lost(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.renew(JOB, "task-2") == "lost"


class TestEnd:
    def test_a_crash_schedules_a_restart_at_the_last_sign_of_life_plus_the_offset(
        self, registry: JobRegistry
    ) -> None:
        register(registry)
        started = run(registry, "task-1")
        at = started + 0.5

        assert registry.end(JOB, "task-1", Outcome.CRASHED, "boom", at=at) == "restart_scheduled"

        record = state(registry)
        assert record.state is JobState.RESTART_SCHEDULED
        assert record.restart_at == pytest.approx(at + OFFSET, abs=1e-5)
        assert registry.pending_restarts()[JOB] == pytest.approx(at + OFFSET, abs=1e-5)
        assert (record.restarts, record.consecutive_crashes, record.error) == (1, 1, "boom")
        assert not registry.leases([JOB])[JOB]

    def test_the_last_error_stays_visible_while_the_job_runs_again(self, registry: JobRegistry) -> None:
        from enrgdaq.control.status import job_status

        register(registry)
        run(registry, "task-1")
        registry.end(JOB, "task-1", Outcome.CRASHED, "ValueError: boom", at=time.time())
        registry.reschedule(JOB, time.time())
        run(registry, "task-2")

        record = state(registry)
        assert (record.state, record.error) == (JobState.STARTING, "")
        shown = job_status(record)
        assert (shown.error, shown.last_error) == (None, "ValueError: boom")
        assert shown.last_error_at is not None

    def test_a_second_end_for_the_same_task_is_ignored(self, registry: JobRegistry) -> None:
        register(registry)
        started = run(registry, "task-1")
        registry.end(JOB, "task-1", Outcome.CRASHED, "boom", at=started)

        assert registry.end(JOB, "task-1", Outcome.CRASHED, "again", at=started + 9) == "ignored"

        record = state(registry)
        assert (record.restarts, record.error) == (1, "boom")
        assert registry.pending_restarts()[JOB] == pytest.approx(started + OFFSET, abs=1e-5)

    def test_an_end_for_a_task_that_is_not_the_current_one_is_ignored(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.end(JOB, "task-0", Outcome.CRASHED, "old run") == "ignored"
        assert state(registry).state is JobState.STARTING

    def test_consecutive_crashes_double_the_delay_up_to_backoff_max(self, registry: JobRegistry) -> None:
        register(registry)
        delays = []
        for n in range(6):
            started = run(registry, f"task-{n}")
            at = started + 0.1
            registry.end(JOB, f"task-{n}", Outcome.CRASHED, at=at, backoff_max=5.0, alive_seconds=5.0)
            delays.append(round(state(registry).restart_at - at, 3))

        assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
        assert state(registry).consecutive_crashes == 6

    def test_a_crash_after_running_alive_seconds_resets_the_delay(self, registry: JobRegistry) -> None:
        register(registry)
        for n in range(3):
            started = run(registry, f"task-{n}")
            registry.end(JOB, f"task-{n}", Outcome.CRASHED, at=started + 0.1, alive_seconds=5.0)
        assert state(registry).consecutive_crashes == 3

        started = run(registry, "task-long")
        at = started + 5.0
        registry.end(JOB, "task-long", Outcome.CRASHED, at=at, alive_seconds=5.0)

        record = state(registry)
        assert record.restart_at == pytest.approx(at + OFFSET, abs=1e-5)
        assert record.consecutive_crashes == 1

    def test_a_run_that_exits_by_itself_is_restarted_like_a_crash(self, registry: JobRegistry) -> None:
        register(registry)
        started = run(registry, "task-1")

        assert registry.end(JOB, "task-1", Outcome.EXITED, at=started) == "restart_scheduled"
        assert JOB in registry.pending_restarts()

    def test_without_restart_on_crash_a_crash_leaves_the_job_crashed_and_unscheduled(
        self, registry: JobRegistry
    ) -> None:
        register(registry, restart_on_crash=False)
        run(registry, "task-1")

        assert registry.end(JOB, "task-1", Outcome.CRASHED, "boom") == "crashed"

        assert state(registry).state is JobState.CRASHED
        assert JOB not in registry.pending_restarts()

    def test_a_stopped_end_after_request_stop_leaves_the_job_stopped_and_unscheduled(
        self, registry: JobRegistry
    ) -> None:
        register(registry)
        run(registry, "task-1")
        assert registry.request_stop(JOB, "operator") == "stopping"

        assert registry.end(JOB, "task-1", Outcome.STOPPED) == "stopped"

        record = state(registry)
        assert (record.state, record.restart_at) == (JobState.STOPPED, None)
        assert JOB not in registry.pending_restarts()

    def test_request_start_after_a_stop_schedules_the_job_again(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")
        registry.request_stop(JOB, "operator")
        registry.end(JOB, "task-1", Outcome.STOPPED)

        assert registry.request_start(JOB) == "scheduled"

        record = state(registry)
        assert (record.state, record.desired, record.stop_reason) == (JobState.REGISTERED, "run", "")
        assert registry.take_due(time.time() + 1) == [JOB]
        assert registry.prepare_dispatch(JOB, "task-2") == ("default", "DAQJobTest")
        assert registry.claim(JOB, "task-2", 4242, "host-a") == "ok"

    def test_request_start_of_a_running_job_changes_nothing(self, registry: JobRegistry) -> None:
        register(registry)
        run(registry, "task-1")

        assert registry.request_start(JOB) == "starting"
        assert JOB not in registry.pending_restarts()


class TestLease:
    def test_the_lease_expires_after_lease_ttl_ms_without_renewal(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")
        claimed = time.monotonic()
        assert registry.claim(JOB, "task-1", 4242, "host-a") == "ok"
        assert 0 < registry.redis.pttl(registry.keys.lease(JOB)) <= LEASE_TTL_MS

        wait_for(lambda: not registry.leases([JOB])[JOB], 3 * LEASE_TTL_MS / 1000, "the lease to expire")

        assert time.monotonic() - claimed >= 0.9 * LEASE_TTL_MS / 1000
        # Nobody declared the silent run dead: it takes its lease back when it renews.
        assert registry.renew(JOB, "task-1") == "ok"
        assert registry.leases([JOB])[JOB]

    def test_a_run_declared_dead_meanwhile_has_lost_its_lease_for_good(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")
        registry.claim(JOB, "task-1", 4242, "host-a")
        wait_for(lambda: not registry.leases([JOB])[JOB], 3 * LEASE_TTL_MS / 1000, "the lease to expire")
        assert registry.end(JOB, "task-1", Outcome.CRASHED, "lease expired") == "restart_scheduled"

        assert registry.renew(JOB, "task-1") == "lost"
        assert not registry.leases([JOB])[JOB]

    def test_a_lease_another_run_holds_is_not_taken(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")
        registry.claim(JOB, "task-1", 4242, "host-a")
        registry.redis.set(registry.keys.lease(JOB), "task-2", px=LEASE_TTL_MS)

        assert registry.renew(JOB, "task-1") == "lost"
        assert registry.redis.get(registry.keys.lease(JOB)) in (b"task-2", "task-2")

    def test_renewing_keeps_the_lease_beyond_its_ttl(self, registry: JobRegistry) -> None:
        register(registry)
        dispatch(registry, "task-1")
        claimed = time.monotonic()
        registry.claim(JOB, "task-1", 4242, "host-a")

        def renewed_past_ttl() -> bool:
            assert registry.renew(JOB, "task-1") == "ok"
            return time.monotonic() - claimed > 1.5 * LEASE_TTL_MS / 1000

        wait_for(renewed_past_ttl, 5, "renewals past the lease TTL", interval=LEASE_TTL_MS / 5000)

        assert registry.leases([JOB])[JOB]
