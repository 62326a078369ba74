"""``DAQJobHandleStats``: every job's stats, written to a store each second.

The supervisor publishes the stats of all its jobs every second on
``stats.combined.supervisor.<id>`` (:mod:`enrgdaq.control.ticker`, from the registry the
jobs' lease keepers write); this job turns each of those into

1. the stats table, to ``store_config`` (no tag): one row per job, keyed by the job's unique
   id (two jobs of one type are two rows). The original's columns come first, every one
   filled (a date that never happened is ``N/A``, as in the original), then the new ones
   (see :data:`STATS_COLUMNS`);
2. the time series, to ``timeseries_store_config`` with tag ``timeseries``: one row per job
   and second with resources, rates and latency. When ``timeseries_store_config`` is
   omitted (the original required it, so its own example failed to load) the time series
   goes to ``store_config``'s stores, appended: a CSV or raw file of it never overwrites.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageCombinedStats, DAQJobStats
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig, StorableDAQJobConfig
from enrgdaq.daq.topics import Topic, exact, prefix

DAQ_JOB_HANDLE_STATS_SLEEP_INTERVAL_SECONDS = 1
TIMESERIES_TAG = "timeseries"


class DAQJobHandleStatsConfig(StorableDAQJobConfig, kw_only=True):
    """``store_config``: where the stats table goes (required).

    Attributes:
        timeseries_store_config: where the time series goes; default: ``store_config``'s
            stores, tag ``timeseries``, never overwritten (``stats.csv`` ->
            ``stats_timeseries.csv``).
        subscribe_to_all_stats: also take the stats of other supervisors whose combined
            stats reach this node's proxy.
    """

    timeseries_store_config: DAQJobStoreConfig | None = None
    subscribe_to_all_stats: bool = True


def _ms(when: datetime | None) -> str:
    return str(int(when.timestamp() * 1000)) if when is not None else "N/A"


STATS_COLUMNS = (
    # the original's
    "supervisor",
    "daq_job",
    "is_alive",
    "last_message_in_date",
    "message_in_count",
    "last_message_out_date",
    "message_out_count",
    "message_in_queue_size",
    "message_out_queue_size",
    "last_restart_date",
    "restart_count",
    # new
    "timestamp",
    "daq_job_type",
    "state",
    "message_in_bytes",
    "message_out_bytes",
    "message_in_rate",
    "message_out_rate",
    "message_in_bytes_rate",
    "message_out_bytes_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "cpu_percent",
    "rss_mb",
    "ring_occupancy",
    "ring_slots",
    "ring_blocked_ms",
)


def stats_row(supervisor: str, unique_id: str, s: DAQJobStats, now_ms: int) -> dict[str, Any]:
    return {
        "supervisor": supervisor,
        "daq_job": unique_id,
        "is_alive": "true" if s.is_alive else "false",
        "last_message_in_date": _ms(s.message_in_stats.last_updated),
        "message_in_count": s.message_in_stats.count,
        "last_message_out_date": _ms(s.message_out_stats.last_updated),
        "message_out_count": s.message_out_stats.count,
        "message_in_queue_size": s.message_in_queue_stats.count,
        "message_out_queue_size": s.message_out_queue_stats.count,
        "last_restart_date": _ms(s.restart_stats.last_updated),
        "restart_count": s.restart_stats.count,
        "timestamp": now_ms,
        "daq_job_type": s.daq_job_type or "unknown",
        "state": s.state or "unknown",
        "message_in_bytes": s.message_in_bytes,
        "message_out_bytes": s.message_out_bytes,
        "message_in_rate": round(s.message_in_rate, 3),
        "message_out_rate": round(s.message_out_rate, 3),
        "message_in_bytes_rate": round(s.message_in_bytes_rate, 1),
        "message_out_bytes_rate": round(s.message_out_bytes_rate, 1),
        "latency_p50_ms": round(s.latency_stats.p50_ms, 3),
        "latency_p95_ms": round(s.latency_stats.p95_ms, 3),
        "latency_p99_ms": round(s.latency_stats.p99_ms, 3),
        "cpu_percent": round(s.resource_stats.cpu_percent, 2),
        "rss_mb": round(s.resource_stats.rss_mb, 2),
        "ring_occupancy": s.ring_occupancy,
        "ring_slots": s.ring_slots,
        "ring_blocked_ms": s.ring_blocked_ms,
    }


TIMESERIES_COLUMNS = (
    "timestamp",
    "supervisor",
    "daq_job",
    "daq_job_type",
    "rss_mb",
    "cpu_percent",
    "message_in_rate",
    "message_out_rate",
    "message_in_bytes_rate",
    "message_out_bytes_rate",
    "latency_p99_ms",
    "ring_occupancy",
)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pa.Table:
    return pa.table({c: [row[c] for row in rows] for c in columns})


def appending(config: DAQJobStoreConfig) -> DAQJobStoreConfig:
    """``config`` with its file stores appending (a time series must not replace itself)."""
    changes: dict[str, Any] = {}
    for name in ("csv", "raw"):
        sub = getattr(config, name, None)
        if sub is not None and getattr(sub, "overwrite", False):
            changes[name] = msgspec.structs.replace(sub, overwrite=False)
    return msgspec.structs.replace(config, **changes) if changes else config


class DAQJobHandleStats(DAQJob):
    allowed_message_in_types = [DAQJobMessageCombinedStats]
    config_type = DAQJobHandleStatsConfig
    config: DAQJobHandleStatsConfig

    def __init__(self, config: DAQJobHandleStatsConfig, **kwargs: Any) -> None:
        self._timeseries_config = config.timeseries_store_config or appending(config.store_config)
        super().__init__(config, **kwargs)

    def _subscriptions(self) -> list[bytes]:
        sid = self.supervisor_info.supervisor_id
        own = exact(Topic.stats_combined(sid))
        if self.config.subscribe_to_all_stats:
            own = prefix(Topic.stats_combined(""))  # every supervisor's (ends with '.')
        return [*super()._subscriptions(), own]

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        if isinstance(message, DAQJobMessageCombinedStats):
            self.write(message)
        return True

    def write(self, message: DAQJobMessageCombinedStats) -> None:
        now_ms = int(time.time() * 1000)
        rows = [
            stats_row(supervisor, unique_id, stats, now_ms)
            for supervisor, jobs in sorted(message.stats.items())
            for unique_id, stats in sorted(jobs.items())
        ]
        if not rows:
            return
        self._put_message_out(
            DAQJobMessageStorePyArrow(
                store_config=self.config.store_config, table=_table(rows, STATS_COLUMNS)
            )
        )
        self._put_message_out(
            DAQJobMessageStorePyArrow(
                store_config=self._timeseries_config,
                tag=TIMESERIES_TAG,
                table=_table(rows, TIMESERIES_COLUMNS),
            )
        )

    def start(self) -> None:
        while not self._has_been_freed:
            time.sleep(0.1)
