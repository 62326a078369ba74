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
        self._latencies: list[float] = []

    def record_in(self, message: DAQJobMessage, size: int = 0) -> None:
        self.processed += 1
        self.processed_bytes += size
        self.last_in = time.time()
        if message.timestamp is not None:
            ms = (datetime.now() - message.timestamp).total_seconds() * 1000
            samples = self._latencies
            if len(samples) >= LATENCY_SAMPLES:
                del samples[: LATENCY_SAMPLES // 2]
            samples.append(ms)

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
        )

    def snapshot(self) -> dict[str, Any]:
        return {
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
