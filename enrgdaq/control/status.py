"""What ``enrgdaq status`` and ``Supervisor.get_status()`` report, read from the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from enrgdaq.control.keys import Keys
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.daq.models import DAQJobInfo, DAQJobStats
from enrgdaq.models import SupervisorInfo


class RestartScheduleInfo(msgspec.Struct, kw_only=True):
    job: str
    restart_at: str


class JobStatus(msgspec.Struct, kw_only=True):
    unique_id: str
    daq_job_type: str
    queue: str
    state: str
    pid: int | None
    hostname: str | None
    restarts: int
    last_heartbeat: str | None
    restart_at: str | None
    error: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    config_file: str | None = None
    stats: dict[str, Any] = {}


class SupervisorStatus(msgspec.Struct, kw_only=True):
    supervisor_info: SupervisorInfo
    daq_jobs: list[DAQJobInfo] = []
    daq_job_stats: dict[str, dict[str, DAQJobStats]] = {}
    daq_job_remote_stats: dict[str, Any] = {}
    restart_schedules: list[RestartScheduleInfo] = []
    jobs: list[JobStatus] = []
    problems: dict[str, str] = {}
    supervisor_alive: bool = False


def iso_time(epoch: float | None) -> str | None:
    """An epoch time as status shows it (local time, ISO 8601, milliseconds)."""
    return datetime.fromtimestamp(epoch).isoformat(timespec="milliseconds") if epoch else None


UNATTENDED_STATES = (JobState.STARTING, JobState.RUNNING, JobState.RESTART_SCHEDULED)


def unattended(registry: JobRegistry, records: list[JobRecord], alive: bool) -> set[str]:
    """Jobs of a lost node (its supervisor's heartbeat expired) that nothing runs: no run holds
    their lease. Nobody notices their end or restarts them until the node is back, so they are
    shown as ``waiting`` (the registry still says how their last run was)."""
    if alive:
        return set()
    candidates = [r.unique_id for r in records if r.state in UNATTENDED_STATES]
    if not candidates:
        return set()
    return {uid for uid, held in registry.leases(candidates).items() if not held}


def job_status(record: JobRecord, waiting: bool = False) -> JobStatus:
    """``waiting``: the job is one of :func:`unattended`'s, shown as waiting for its node."""
    live = record.state.is_live and not waiting
    stats = record.stats_dict
    state, error = shown_state(record, stats)
    if waiting:
        state, error = JobState.WAITING.value, None
    return JobStatus(
        unique_id=record.unique_id,
        daq_job_type=record.daq_job_type,
        queue=record.queue,
        state=state,
        pid=record.pid if live else None,
        hostname=record.hostname or None,
        restarts=record.restarts,
        last_heartbeat=iso_time(record.last_heartbeat),
        restart_at=None if waiting else iso_time(record.restart_at),
        error=error,
        last_error=record.last_error or None,
        last_error_at=iso_time(record.last_error_at),
        config_file=record.config_file or None,
        stats=stats,
    )


def shown_state(record: JobRecord, stats: dict[str, Any]) -> tuple[str, str | None]:
    """(state, error) as status shows them: a running store whose writes fail is ``stalled``,
    with its last write error (its data waits in the ring; the registry still says running)."""
    if record.state is JobState.RUNNING and stats.get("write_failing"):
        return JobState.STALLED.value, str(stats.get("last_error") or "cannot write")
    return record.state.shown, record.error or None


def collect_status(registry: JobRegistry, info: SupervisorInfo) -> SupervisorStatus:
    from enrgdaq.control.ticker import job_stats

    records = registry.all()
    keys = Keys(info.supervisor_id)
    problems = registry.redis.hgetall(keys.problems)
    alive = bool(registry.redis.exists(keys.supervisor_alive))
    waiting = unattended(registry, records, alive)
    return SupervisorStatus(
        supervisor_info=info,
        daq_jobs=[
            DAQJobInfo(
                daq_job_type=r.daq_job_type,
                unique_id=r.unique_id,
                instance_id=r.restarts,
                supervisor_info=info,
            )
            for r in records
            if r.state.is_live and r.unique_id not in waiting
        ],
        daq_job_stats={info.supervisor_id: {r.unique_id: job_stats(r) for r in records}},
        restart_schedules=[
            RestartScheduleInfo(job=r.unique_id, restart_at=iso_time(r.restart_at) or "")
            for r in records
            if r.restart_at
        ],
        jobs=[job_status(r, r.unique_id in waiting) for r in records],
        problems=dict(problems),  # type: ignore[arg-type]
        supervisor_alive=alive,
    )
