"""The job registry: one Redis hash per job, and the transitions between states.

The registry is the supervisor's memory. It outlives every process (Redis
runs with AOF), so a restarted supervisor, beat or worker picks up exactly
where the last one left off: who runs where, which restarts are pending.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import redis

from enrgdaq.control import scripts
from enrgdaq.control.keys import Keys
from enrgdaq.control.lifecycle import JobState, Outcome

LEASE_TTL_MS = 1000
"""A run on another host that has not renewed its lease for this long is dead (measured: the
lease is the only detector with a bound for every kind of death there). On the supervisor's own
host its process is watched instead (see :mod:`enrgdaq.control.reconcile`)."""

LEASE_RENEW_INTERVAL_SECONDS = 0.2


class JobRecord(msgspec.Struct, kw_only=True):
    """A job as the registry holds it (every field is text in Redis)."""

    unique_id: str
    daq_job_type: str = ""
    queue: str = "default"
    config: str = ""
    config_file: str = ""
    restart_on_crash: bool = True
    restart_offset: float = 2.0
    desired: str = "run"
    stop_reason: str = ""
    state: JobState = JobState.REGISTERED
    task_id: str = ""
    pid: int | None = None
    hostname: str = ""
    started_at: float | None = None
    last_heartbeat: float | None = None
    restart_at: float | None = None
    ended_at: float | None = None
    restarts: int = 0
    consecutive_crashes: int = 0
    exit_reason: str = ""
    error: str = ""
    last_error: str = ""
    """The error of the last run that ended with one; unlike ``error``, kept while it runs again."""
    last_error_at: float | None = None
    stats: str = ""
    removed: bool = False
    is_store: bool = False

    @property
    def stats_dict(self) -> dict[str, Any]:
        try:
            value = json.loads(self.stats) if self.stats else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _record_from_hash(data: dict[str, str]) -> JobRecord:
    cleaned: dict[str, Any] = {k: v for k, v in data.items() if v != ""}
    for flag in ("restart_on_crash", "removed", "is_store"):
        if flag in cleaned:
            cleaned[flag] = cleaned[flag] == "1"
    cleaned.setdefault("unique_id", "?")
    fields = set(JobRecord.__struct_fields__)
    cleaned = {k: v for k, v in cleaned.items() if k in fields}
    return msgspec.convert(cleaned, JobRecord, strict=False)


class JobRegistry:
    """Reads and changes job records of one supervisor."""

    def __init__(self, client: redis.Redis, supervisor_id: str) -> None:
        self.redis = client
        self.keys = Keys(supervisor_id)
        self._claim = client.register_script(scripts.CLAIM)
        self._renew = client.register_script(scripts.RENEW)
        self._mark_running = client.register_script(scripts.MARK_RUNNING)
        self._end = client.register_script(scripts.END)
        self._take_due = client.register_script(scripts.TAKE_DUE)
        self._prepare = client.register_script(scripts.PREPARE_DISPATCH)
        self._request_stop = client.register_script(scripts.REQUEST_STOP)
        self._request_start = client.register_script(scripts.REQUEST_START)
        self._stop_run = client.register_script(scripts.STOP_RUN)

    # -- reading -----------------------------------------------------------
    def unique_ids(self) -> list[str]:
        return sorted(self.redis.smembers(self.keys.jobs))  # type: ignore[arg-type]

    def get(self, unique_id: str) -> JobRecord | None:
        data = self.redis.hgetall(self.keys.job(unique_id))
        return _record_from_hash(data) if data else None  # type: ignore[arg-type]

    def all(self) -> list[JobRecord]:
        ids = self.unique_ids()
        pipe = self.redis.pipeline(transaction=False)
        for uid in ids:
            pipe.hgetall(self.keys.job(uid))
        return [_record_from_hash(d) for d in pipe.execute() if d]

    def leases(self, unique_ids: list[str]) -> dict[str, bool]:
        pipe = self.redis.pipeline(transaction=False)
        for uid in unique_ids:
            pipe.exists(self.keys.lease(uid))
        return {uid: bool(n) for uid, n in zip(unique_ids, pipe.execute(), strict=True)}

    # -- registration ------------------------------------------------------
    def register(self, record: JobRecord) -> None:
        """Add a job and schedule its first dispatch now."""
        mapping: dict[Any, Any] = {
            "unique_id": record.unique_id,
            "daq_job_type": record.daq_job_type,
            "queue": record.queue,
            "config": record.config,
            "config_file": record.config_file,
            "restart_on_crash": "1" if record.restart_on_crash else "0",
            "restart_offset": repr(record.restart_offset),
            "desired": "run",
            "state": JobState.REGISTERED.value,
            "restarts": 0,
            "consecutive_crashes": 0,
            "removed": "0",
            "is_store": "1" if record.is_store else "0",
        }
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.job(record.unique_id))
        pipe.hset(self.keys.job(record.unique_id), mapping=mapping)
        pipe.sadd(self.keys.jobs, record.unique_id)
        pipe.zadd(self.keys.restarts, {record.unique_id: time.time()})
        pipe.execute()

    def register_invalid(self, unique_id: str, config_file: str, daq_job_type: str, error: str) -> None:
        """Record a job whose file could not be used, so that status shows it as crashed."""
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.job(unique_id))
        pipe.hset(
            self.keys.job(unique_id),
            mapping={
                "unique_id": unique_id,
                "daq_job_type": daq_job_type,
                "config_file": config_file,
                "queue": "",
                "desired": "stop",
                "state": JobState.CRASHED.value,
                "error": error,
                "exit_reason": Outcome.INVALID.value,
                "removed": "0",
            },
        )
        pipe.sadd(self.keys.jobs, unique_id)
        pipe.zrem(self.keys.restarts, unique_id)
        pipe.execute()

    def update_config(
        self, unique_id: str, config: str, queue: str, restart_on_crash: bool, restart_offset: float
    ) -> None:
        self.redis.hset(
            self.keys.job(unique_id),
            mapping={
                "config": config,
                "queue": queue,
                "restart_on_crash": "1" if restart_on_crash else "0",
                "restart_offset": repr(restart_offset),
            },
        )

    def mark_removed(self, unique_id: str) -> None:
        self.redis.hset(self.keys.job(unique_id), "removed", "1")
        self.request_stop(unique_id, "config file removed")

    def forget(self, unique_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.job(unique_id), self.keys.lease(unique_id))
        pipe.srem(self.keys.jobs, unique_id)
        pipe.zrem(self.keys.restarts, unique_id)
        pipe.execute()

    def forget_all(self) -> None:
        for uid in self.unique_ids():
            self.forget(uid)
        self.redis.delete(self.keys.problems)

    # -- a run's own transitions -------------------------------------------
    def claim(self, unique_id: str, task_id: str, pid: int, hostname: str) -> str:
        keys = [self.keys.job(unique_id), self.keys.lease(unique_id)]
        args: list[Any] = [task_id, pid, hostname, repr(time.time()), LEASE_TTL_MS]
        return str(self._claim(keys=keys, args=args))

    def renew(self, unique_id: str, task_id: str) -> str:
        keys = [self.keys.job(unique_id), self.keys.lease(unique_id)]
        return str(self._renew(keys=keys, args=[task_id, repr(time.time()), LEASE_TTL_MS]))

    def mark_running(self, unique_id: str, task_id: str) -> bool:
        return bool(self._mark_running(keys=[self.keys.job(unique_id)], args=[task_id]))

    def end(
        self,
        unique_id: str,
        task_id: str,
        outcome: Outcome,
        error: str = "",
        *,
        at: float | None = None,
        backoff_max: float = 60.0,
        alive_seconds: float = 5.0,
    ) -> str:
        """Record that a run ended; returns the new state, or ``ignored`` if already recorded."""
        now = time.time()
        keys = [self.keys.job(unique_id), self.keys.lease(unique_id), self.keys.restarts]
        args: list[Any] = [
            task_id,
            outcome.value,
            error[-4000:],
            repr(at if at is not None else now),
            backoff_max,
            alive_seconds,
            unique_id,
            repr(now),
        ]
        return str(self._end(keys=keys, args=args))

    def set_stats(self, unique_id: str, stats: dict[str, Any]) -> None:
        self.redis.hset(self.keys.job(unique_id), "stats", json.dumps(stats))

    # -- the supervisor's transitions --------------------------------------
    def take_due(self, now: float, limit: int = 100) -> list[str]:
        return list(self._take_due(keys=[self.keys.restarts], args=[repr(now), limit]))

    def prepare_dispatch(self, unique_id: str, task_id: str) -> tuple[str, str] | None:
        """Mark the job as waiting for ``task_id``; returns (queue, type) or None if not wanted."""
        found = self._prepare(keys=[self.keys.job(unique_id)], args=[task_id, repr(time.time())])
        if not found:
            return None
        return str(found[0]), str(found[1])

    def reschedule(self, unique_id: str, at: float) -> None:
        self.redis.zadd(self.keys.restarts, {unique_id: at})

    def request_stop(self, unique_id: str, reason: str) -> str:
        keys = [self.keys.job(unique_id), self.keys.restarts]
        return str(self._request_stop(keys=keys, args=[reason, unique_id]))

    def request_start(self, unique_id: str) -> str:
        keys = [self.keys.job(unique_id), self.keys.restarts]
        return str(self._request_start(keys=keys, args=[unique_id, repr(time.time())]))

    def stop_run(self, unique_id: str, task_id: str) -> bool:
        return bool(self._stop_run(keys=[self.keys.job(unique_id)], args=[task_id]))

    def pending_restarts(self) -> dict[str, float]:
        return dict(self.redis.zrange(self.keys.restarts, 0, -1, withscores=True))  # type: ignore[arg-type]
