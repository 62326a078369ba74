"""The reconcile pass: notice dead runs, dispatch due restarts.

Runs on every routes tick (10 Hz). A run on this host is dead when its process
is gone (milliseconds), or when it has been silent for ``WEDGED_SECONDS`` with
its process still there (then the process is killed first: a job never runs
twice). A run on another host is dead when its lease has run out (bounded by
the lease TTL; the run ends itself when it finds out). The Celery
``task-failed`` event is a further, separate path (:mod:`enrgdaq.control.events`).
Whichever comes first wins; the registry's END script makes the others no-ops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

import psutil

from enrgdaq.constants import DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS
from enrgdaq.control.dispatch import dispatch_due
from enrgdaq.control.lifecycle import JobState, Outcome
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.daq.outbox import ANY_STORE
from enrgdaq.data.settings import ring_path

logger = logging.getLogger(__name__)

LOCK_MS = 2000


BRIDGE_TYPES = frozenset({"DAQJobRemote", "DAQJobRemoteProxy"})
"""Jobs that carry store payloads to other nodes (:mod:`enrgdaq.daq.jobs.remote`)."""

WEDGED_SECONDS = 10.0
"""A run on this host silent for this long while its process is still there is killed and
declared dead (one on another host: as soon as its lease runs out, ``LEASE_TTL_MS``)."""


def kill_run_process(pid: int, started_at: float | None) -> bool:
    """SIGKILL ``pid`` if it is the process that started the run (not a later one with its pid)."""
    try:
        process = psutil.Process(pid)
        if started_at is not None and process.create_time() > started_at + 1.0:
            return False
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=1)
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass
    except psutil.Error as exc:
        logger.error("could not end the silent process %d: %s", pid, exc)
        return False
    return True


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


class Reconciler:
    def __init__(
        self, registry: JobRegistry, app: Any, hostname: str, backoff_max: float, run_dir: str = ""
    ) -> None:
        self.run_dir = run_dir
        self.registry = registry
        self.app = app
        self.hostname = hostname
        self.backoff_max = backoff_max

    def tick(self, now: float | None = None) -> list[JobRecord]:
        """One pass; returns the records it looked at (for routes)."""
        now = time.time() if now is None else now
        client = self.registry.redis
        if not client.set(self.registry.keys.reconcile_lock, "1", nx=True, px=LOCK_MS):
            return self.registry.all()
        try:
            records = self.registry.all()
            self._detect_dead(records)
            dispatch_due(self.app, self.registry, now)
            self._forget_removed(records)
            return records
        finally:
            client.delete(self.registry.keys.reconcile_lock)

    def _detect_dead(self, records: list[JobRecord]) -> None:
        live = [r for r in records if r.state.is_live]
        if not live:
            return
        leases = self.registry.leases([r.unique_id for r in live])
        for record in live:
            here = record.hostname == self.hostname and bool(record.pid)
            if here and record.pid and process_gone(record.pid):
                self._declare_dead(record, f"process {record.pid} is gone")
            elif not leases[record.unique_id]:
                if here:
                    self._silent_here(record)
                else:
                    self._declare_dead(record, "lease expired: no sign of life")

    def _silent_here(self, record: JobRecord) -> None:
        """A run on this host whose lease ran out while its process is still there: a loaded
        machine or a long call that holds the GIL (h5py does) keeps its lease keeper from
        renewing. Another run of the job beside it would write what it writes a second time, so
        it is waited for (it takes its lease back when it wakes) and, silent for
        ``WEDGED_SECONDS``, killed before it is declared dead."""
        silent = time.time() - (record.last_heartbeat or record.started_at or 0.0)
        if silent < WEDGED_SECONDS:
            return
        assert record.pid is not None
        killed = kill_run_process(record.pid, record.started_at)
        self._declare_dead(
            record,
            f"no sign of life for {silent:.0f} s while its process {record.pid} was there"
            + ("; killed (-9) so that no second run can overlap it" if killed else ""),
        )

    def _declare_dead(self, record: JobRecord, why: str) -> None:
        state = self.registry.end(
            record.unique_id,
            record.task_id,
            Outcome.CRASHED,
            why,
            at=record.last_heartbeat,
            backoff_max=self.backoff_max,
            alive_seconds=DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS,
        )
        if state != "ignored":
            logger.warning("[%s] %s -> %s", record.unique_id, why, state)

    def _forget_removed(self, records: list[JobRecord]) -> None:
        for record in records:
            if record.removed and record.state in (JobState.STOPPED, JobState.CRASHED):
                self.registry.forget(record.unique_id)
                logger.info("[%s] removed from the registry", record.unique_id)
                if self.run_dir:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(ring_path(self.run_dir, record.unique_id))


def routes_of(records: list[JobRecord]) -> dict[str, list[str]]:
    """Store class name -> unique ids of every store that is wanted, running or not.

    A store that restarts (or waits for a worker) stays in the routes, so that its producers
    keep writing into their ring entry for it and the payloads wait there until it is back
    (a store that never comes back is evicted after ``ring_consumer_timeout_seconds``, and what
    it missed is counted). Inline messages go only to running stores (see
    :mod:`enrgdaq.daq.outbox`).
    """
    routes: dict[str, list[str]] = {}
    for record in records:
        if not store_is_wanted(record):
            continue
        if record.is_store:
            routes.setdefault(record.daq_job_type, []).append(record.unique_id)
        elif record.daq_job_type in BRIDGE_TYPES:
            routes.setdefault(ANY_STORE, []).append(record.unique_id)
    return routes


def stores_not_running(records: list[JobRecord]) -> list[str]:
    """Ids of the wanted stores (and bridges) that do not run now (restarting, waiting for a worker)."""
    return [
        r.unique_id
        for r in records
        if (r.is_store or r.daq_job_type in BRIDGE_TYPES)
        and store_is_wanted(r)
        and r.state is not JobState.RUNNING
    ]


def store_is_wanted(record: JobRecord) -> bool:
    """Meant to run: not asked to stop (by a person, or a removed file), not crashed for good."""
    return (
        record.desired == "run"
        and not record.removed
        and record.state not in (JobState.STOPPED, JobState.CRASHED)
    )
