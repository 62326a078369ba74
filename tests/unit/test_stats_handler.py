"""DAQJobHandleStats' rows and the rates the supervisor's tick computes: every column filled,
one row per job (two of one type stay two), the time series appended, never overwritten."""

from __future__ import annotations

from datetime import datetime

import msgspec

from enrgdaq.config.decode import decode
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.registry import JobRecord
from enrgdaq.control.ticker import job_stats
from enrgdaq.daq.jobs.handle_stats import (
    STATS_COLUMNS,
    TIMESERIES_TAG,
    DAQJobHandleStats,
    DAQJobHandleStatsConfig,
)
from enrgdaq.daq.models import DAQJobMessageCombinedStats
from enrgdaq.daq.stats import JobCounters, RateTracker
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow
from enrgdaq.models import SupervisorInfo

EXAMPLE = (
    'daq_job_type = "DAQJobHandleStats"\n[store_config.csv]\nfile_path = "stats.csv"\noverwrite = true\n'
)


def record(uid: str, sent: int, at: float, restarts: int = 0) -> JobRecord:
    stats = {"sent": sent, "sent_bytes": sent * 100, "processed": 0, "at": at, "last_out": at, "rss_mb": 60.0}
    return JobRecord(
        unique_id=uid,
        daq_job_type="DAQJobTest",
        state=JobState.RUNNING,
        restarts=restarts,
        started_at=at - 5,
        stats=msgspec.json.encode(stats).decode(),
    )


def test_rates_come_from_the_snapshots_own_clock() -> None:
    rates = RateTracker()
    job_stats(record("a", 100, at=1000.0), rates)
    seen_twice = job_stats(record("a", 100, at=1000.0), rates)
    later = job_stats(record("a", 150, at=1002.0), rates)
    assert seen_twice.message_out_rate == 0.0
    assert later.message_out_rate == 25.0 and later.message_out_bytes_rate == 2500.0
    again = job_stats(record("a", 150, at=1002.0), rates)  # the same snapshot: the rate stays
    assert again.message_out_rate == 25.0
    restarted = job_stats(record("a", 3, at=1003.0, restarts=1), rates)
    assert restarted.message_out_rate == 0.0 and restarted.restart_stats.count == 1
    assert restarted.restart_stats.last_updated is not None


def test_latency_percentiles_reach_the_snapshot() -> None:
    from enrgdaq.daq.models import DAQJobMessage

    counters = JobCounters()
    for _ in range(100):
        counters.record_in(DAQJobMessage(timestamp=datetime.now()))
    snap = counters.snapshot()
    assert snap["latency_count"] == 100
    assert 0 <= snap["latency_p50_ms"] <= snap["latency_p95_ms"] <= snap["latency_p99_ms"]


def test_two_jobs_of_one_type_are_two_rows_with_every_column_filled() -> None:
    config = decode(EXAMPLE, DAQJobHandleStatsConfig, "handle_stats.toml")
    assert config.timeseries_store_config is None  # the original required it; its example omits it
    job = DAQJobHandleStats(config, supervisor_info=SupervisorInfo(supervisor_id="lab"))
    rates = RateTracker()
    combined = {"lab": {uid: job_stats(record(uid, 10, at=1000.0), rates) for uid in ("a", "b")}}
    job.write(DAQJobMessageCombinedStats(stats=combined))
    stats_msg, series_msg = job.message_out
    assert isinstance(stats_msg, DAQJobMessageStorePyArrow) and isinstance(
        series_msg, DAQJobMessageStorePyArrow
    )
    table = stats_msg.get_table()
    assert table.column_names == list(STATS_COLUMNS)
    rows = table.to_pylist()
    assert [r["daq_job"] for r in rows] == ["a", "b"]
    assert all(value not in (None, "") for row in rows for value in row.values())
    assert rows[0]["last_restart_date"] == "N/A" and rows[0]["is_alive"] == "true"
    assert rows[0]["last_message_out_date"] == "1000000"
    assert stats_msg.tag is None and stats_msg.store_config.csv.overwrite  # type: ignore[union-attr]
    assert series_msg.tag == TIMESERIES_TAG
    assert series_msg.store_config.csv.overwrite is False  # type: ignore[union-attr]
    assert series_msg.store_config.csv.file_path == "stats.csv"  # type: ignore[union-attr]
