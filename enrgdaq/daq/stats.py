"""Counters a job keeps about its messages, reported to the registry every second."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from enrgdaq.daq.models import DAQJobLatencyStats, DAQJobMessage

LATENCY_SAMPLES = 1000


def worth_a_line(before: int, after: int) -> bool:
    """Whether a growing count of trouble (drops, losses) deserves a log line now: when it passes
    1, 10, 100 and then every 1000, so that days of running give a few lines, not a flood."""
    return any(before < mark <= after for mark in (1, 10, 100)) or after // 1000 > before // 1000


class JobCounters:
    """Plain counters; written by the job's threads, read by the lease keeper."""

    def __init__(self) -> None:
        self.processed = 0
        self.processed_bytes = 0
        self.sent = 0
        self.sent_bytes = 0
        self.rejected = 0
        self.failed = 0
        self.unrouted = 0
        self.dropped = 0
        self.inline_large = 0
        self.unsupported = 0  # store messages of a kind a store cannot store (e.g. raw bytes to HDF5)
        self.write_errors = 0  # a store's failed write attempts (each retried; nothing lost)
        self.write_failing = 0  # 1 while a store cannot write (its data waits in the ring)
        self.last_error: str | None = None  # the last write error, as status shows it
        self.last_in: float | None = None
        self.last_out: float | None = None
        self.extra: dict[str, int] = {}
        """A job's own counters (e.g. alerts delivered / failed), reported with the others."""
        self._latencies: list[float] = []

    def record_in(self, message: DAQJobMessage, size: int = 0) -> None:
        self.processed += 1
        self.processed_bytes += size
        self.last_in = time.time()
        self.record_latency(message)

    def record_batch_in(self, messages: list[DAQJobMessage], size: int = 0) -> None:
        """A batch taken at once (a store's ``handle_batch``): counts, bytes, last_in and latency."""
        self.processed += len(messages)
        self.processed_bytes += size
        self.last_in = time.time()
        for message in messages:
            self.record_latency(message)

    def record_latency(self, message: DAQJobMessage) -> None:
        """One latency sample: now minus the message's creation time (same clock on one node)."""
        if message.timestamp is None:
            return
        ms = (datetime.now() - message.timestamp).total_seconds() * 1000
        samples = self._latencies
        if len(samples) >= LATENCY_SAMPLES:
            del samples[: LATENCY_SAMPLES // 2]
        samples.append(ms)

    def count(self, name: str, by: int = 1) -> None:
        """Add to a job's own counter ``name`` (reported in the stats, see ``extra``)."""
        self.extra[name] = self.extra.get(name, 0) + by

    def record_out(self, size: int) -> None:
        self.sent += 1
        self.sent_bytes += size
        self.last_out = time.time()

    def latency(self) -> DAQJobLatencyStats:
        samples = sorted(self._latencies)
        if not samples:
            return DAQJobLatencyStats()
        n = len(samples)
        return DAQJobLatencyStats(
            count=n,
            min_ms=samples[0],
            max_ms=samples[-1],
            avg_ms=sum(samples) / n,
            p95_ms=samples[min(n - 1, int(n * 0.95))],
            p99_ms=samples[min(n - 1, int(n * 0.99))],
            p50_ms=samples[min(n - 1, int(n * 0.5))],
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything the lease keeper writes to the registry each second (``at``: when)."""
        latency = self.latency()
        return {
            **self.extra,
            "at": time.time(),
            "latency_count": latency.count,
            "latency_p50_ms": latency.p50_ms,
            "latency_p95_ms": latency.p95_ms,
            "latency_p99_ms": latency.p99_ms,
            "latency_max_ms": latency.max_ms,
            "processed": self.processed,
            "processed_bytes": self.processed_bytes,
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "rejected": self.rejected,
            "failed": self.failed,
            "unrouted": self.unrouted,
            "dropped": self.dropped,
            "inline_large": self.inline_large,
            "unsupported": self.unsupported,
            "write_errors": self.write_errors,
            "write_failing": self.write_failing,
            "last_error": self.last_error,
            "last_in": self.last_in,
            "last_out": self.last_out,
        }


class RateTracker:
    """Per-second rates of growing counters, from successive stats snapshots of each job.

    A snapshot is stamped (``at``) when it is taken, so a rate is the change between two
    snapshots divided by the time between them, whatever the reader's own pace; a reader that
    sees the same snapshot twice keeps the last rate. It also notes when a counter last grew,
    for jobs that do not stamp ``last_in``/``last_out`` themselves.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, float]] = {}
        self._rates: dict[tuple[str, str], float] = {}
        self.grew_at: dict[tuple[str, str], float] = {}

    def rate(self, job: str, name: str, value: float, at: float | None) -> float:
        key = (job, name)
        now = at if at is not None else time.time()
        previous = self._last.get(key)
        if previous is None or value < previous[1]:  # first sight, or a restart reset the counter
            self._last[key] = (now, value)
            if value > 0:
                self.grew_at.setdefault(key, now)
            self._rates[key] = 0.0
            return 0.0
        seen_at, seen = previous
        if now - seen_at <= 0:
            return self._rates.get(key, 0.0)
        if value > seen:
            self.grew_at[key] = now
        rate = (value - seen) / (now - seen_at)
        self._last[key] = (now, value)
        self._rates[key] = rate
        return rate

    def forget(self, keep: set[str]) -> None:
        """Drop the state of jobs no longer in ``keep`` (removed jobs)."""
        for key in [k for k in self._last if k[0] not in keep]:
            self._last.pop(key, None)
            self._rates.pop(key, None)
            self.grew_at.pop(key, None)
