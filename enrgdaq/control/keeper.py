"""The lease keeper: a thread beside each running job that proves it is alive.

Every 200 ms it renews the lease; the renewal also says whether the run has
been asked to stop (a person, a worker shutting down, a new config). Every
second it writes the job's counters to the registry, with their per-second rates, and hands
the rates to Flower (:mod:`enrgdaq.control.flower_progress`). If Redis cannot be
reached for longer than the lease lasts, the run stops, because the supervisor
may by then have declared it dead; a run that finds its lease taken or itself
declared dead ends its process at once (:meth:`LeaseKeeper._fence`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psutil
import redis

from enrgdaq.constants import DAQ_JOB_STOP_GRACE_SECONDS
from enrgdaq.control.flower_progress import FlowerProgress
from enrgdaq.control.lifecycle import Outcome
from enrgdaq.control.registry import LEASE_RENEW_INTERVAL_SECONDS, LEASE_TTL_MS, JobRegistry

logger = logging.getLogger(__name__)

STATS_INTERVAL_SECONDS = 1.0
RATES = {
    "in_per_s": "processed",
    "out_per_s": "sent",
    "in_bytes_per_s": "processed_bytes",
    "out_bytes_per_s": "sent_bytes",
}
"""Rates the keeper adds to the stats (name: the counter it is the per-second change of)."""


class LeaseKeeper(threading.Thread):
    def __init__(
        self, registry: JobRegistry, unique_id: str, task_id: str, progress: FlowerProgress | None = None
    ) -> None:
        super().__init__(name=f"lease-{unique_id}", daemon=True)
        self.registry = registry
        self.unique_id = unique_id
        self.task_id = task_id
        self.job: Any = None
        self.stop_requested = False
        self.lost = False
        self._stop_at: float | None = None
        self._done = threading.Event()
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self.progress = progress
        self._previous: tuple[float, dict[str, float]] | None = None

    def run(self) -> None:
        last_ok = time.monotonic()
        next_stats = 0.0
        while not self._done.wait(LEASE_RENEW_INTERVAL_SECONDS):
            now = time.monotonic()
            try:
                answer = self.registry.renew(self.unique_id, self.task_id)
                last_ok = now
            except redis.RedisError as exc:
                if now - last_ok > LEASE_TTL_MS / 1000:
                    self._ask_stop(
                        f"lost contact with Redis ({exc}); stopping so that no second instance can overlap",
                        lost=True,
                    )
                continue
            if self.job is not None:
                # A store's ring entries say it is alive from this thread too: a store busy for
                # long in one write (a slow disk) is never evicted, so nothing it holds is
                # overwritten; only a process that is gone stops counting.
                self.job.ring_heartbeat()
            if answer == "stop":
                self._ask_stop("stop requested")
            elif answer == "lost":
                self._fence()
            if now >= next_stats:
                next_stats = now + STATS_INTERVAL_SECONDS
                self.write_stats()
            self._enforce_grace(now)

    def _ask_stop(self, why: str, lost: bool = False) -> None:
        if lost and not self.lost:
            self.lost = True
            logger.error("[%s] %s", self.unique_id, why)
        if not self.stop_requested:
            self.stop_requested = True
            self._stop_at = time.monotonic()
            logger.info("[%s] %s", self.unique_id, why)
        if self.job is not None:
            self.job.request_stop()

    def _fence(self) -> None:
        """The run was declared dead (or another run holds its lease): it ends at once, writing
        nothing more. What it read from rings and did not give back is read again by the run
        that replaces it, and a store's write journal undoes a write it cut short; a graceful
        stop would write its buffered rows beside that run, a second time."""
        logger.error(
            "[%s] lease lost: this run was declared dead and another may run; ending the process now",
            self.unique_id,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def _enforce_grace(self, now: float) -> None:
        """A job whose ``start()`` ignores stop requests is ended by force, after a grace period."""
        if self._stop_at is None or now - self._stop_at < DAQ_JOB_STOP_GRACE_SECONDS:
            return
        logger.error(
            "[%s] start() did not return %.0f s after the stop request; ending the process",
            self.unique_id,
            DAQ_JOB_STOP_GRACE_SECONDS,
        )
        try:
            self.registry.end(
                self.unique_id,
                self.task_id,
                Outcome.STOPPED,
                "did not stop within the grace period; process ended",
            )
        finally:
            os._exit(1)

    def write_stats(self) -> None:
        job = self.job
        if job is None:
            return
        stats = job.counters.snapshot()
        stats.update(job.data_plane_stats())
        plane = job.message_plane
        if plane is not None:
            stats["malformed"] = plane.malformed_count
            stats["message_lost"] = plane.lost_count
            stats["protocol_errors"] = plane.protocol_error_count
        stats.update(self._rates(stats))
        if self.progress is not None:
            self.progress.update({name: stats[name] for name in RATES}, stats.get("last_error"))
        try:
            stats["cpu_percent"] = self._process.cpu_percent(None)
            stats["rss_mb"] = self._process.memory_info().rss / 1e6
            self.registry.set_stats(self.unique_id, stats)
        except (redis.RedisError, psutil.Error):
            logger.debug("[%s] could not write stats", self.unique_id, exc_info=True)

    def _rates(self, stats: dict[str, Any]) -> dict[str, float]:
        """Per-second change of the counters since the last stats (0 at the first)."""
        now = time.monotonic()
        counts = {name: float(stats.get(counter) or 0) for name, counter in RATES.items()}
        previous, self._previous = self._previous, (now, counts)
        if previous is None or now <= previous[0]:
            return dict.fromkeys(RATES, 0.0)
        elapsed = now - previous[0]
        return {name: round(max(0.0, (counts[name] - previous[1][name]) / elapsed), 2) for name in RATES}

    def close(self) -> None:
        self._done.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(2.0)
