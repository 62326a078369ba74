"""``enrgdaq status``: every job, its state and where it runs."""

from __future__ import annotations

import time
from datetime import datetime

import click
import msgspec

from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.status import JobStatus, collect_status

COLUMNS = (
    "unique_id",
    "daq_job_type",
    "queue",
    "state",
    "pid",
    "hostname",
    "restarts",
    "last_heartbeat",
    "restart_at",
)


DATA_COUNTERS = (
    ("ring_dropped", "dropped by ring_policy drop"),
    ("ring_lost", "missed while evicted from a ring"),
    ("ring_corrupted", "corrupt ring slots"),
    ("message_lost", "lost on the message plane"),
    ("protocol_errors", "impossible sequence stamps (forged or corrupt)"),
    ("malformed", "malformed messages dropped"),
    ("unrouted", "sent with no store listening"),
    ("rejected", "of a type it does not take"),
    ("unsupported", "store messages of a kind this store cannot store"),
    ("failed", "failed in handle_message"),
)
"""Counters that mean data went missing or astray: status shows every one that is not zero."""
DATA_GAUGES = (
    "ring_occupancy",
    "ring_slots",
    "ring_blocked_ms",
    "ring_unreleased",
    "write_errors",
    "write_failing",
)
ERROR_STATES = tuple(
    s.value for s in (JobState.CRASHED, JobState.RESTART_SCHEDULED, JobState.STALLED, JobState.STOPPED)
)
"""States whose error (if any) the table prints under it: why it ended, or why it cannot write."""


def data_health(stats: dict[str, object]) -> dict[str, int]:
    """The data-plane counters and gauges of one job's stats (those it has)."""
    names = [name for name, _ in DATA_COUNTERS] + list(DATA_GAUGES)
    return {name: int(value) for name in names if isinstance(value := stats.get(name), int | float)}


def data_warnings(unique_id: str, data: dict[str, int]) -> list[str]:
    """One line per job whose data went missing or astray, or whose producer waits for its stores."""
    found = [f"{data[name]} {what}" for name, what in DATA_COUNTERS if data.get(name)]
    if data.get("write_failing"):
        found.append(
            f"cannot write ({data.get('write_errors', 0)} failed attempts so far): "
            "its data waits in the ring, retried with backoff"
        )
    if data.get("ring_slots") and data.get("ring_occupancy", 0) >= data["ring_slots"]:
        found.append(f"ring full ({data['ring_slots']} slots): the producer waits for its stores")
    return [f"{unique_id}: " + ", ".join(found)] if found else []


def status_document(
    supervisor_id: str, jobs: list[JobStatus], alive: bool, problems: dict[str, str]
) -> dict[str, object]:
    return {
        "supervisor_id": supervisor_id,
        "supervisor_alive": alive,
        "jobs": [
            {
                **{c: getattr(j, c) for c in COLUMNS},
                "error": j.error,
                "config_file": j.config_file,
                "messages_in": j.stats.get("processed", 0),
                "messages_out": j.stats.get("sent", 0),
                "data": data_health(j.stats),
            }
            for j in jobs
        ],
        "problems": problems,
    }


def _age(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = time.time() - datetime.fromisoformat(iso).timestamp()
    return f"{seconds:.1f}s ago" if seconds >= 0 else f"in {-seconds:.1f}s"


def render_table(doc: dict[str, object]) -> str:
    jobs = doc["jobs"]
    assert isinstance(jobs, list)
    header = ["JOB", "TYPE", "QUEUE", "STATE", "PID", "HOST", "RESTARTS", "HEARTBEAT", "RESTART", "IN", "OUT"]
    rows = [
        [
            str(j["unique_id"]),
            str(j["daq_job_type"]),
            str(j["queue"] or "-"),
            str(j["state"]),
            str(j["pid"] or "-"),
            str(j["hostname"] or "-"),
            str(j["restarts"]),
            _age(j["last_heartbeat"]),
            _age(j["restart_at"]),
            str(j["messages_in"]),
            str(j["messages_out"]),
        ]
        for j in jobs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"supervisor {doc['supervisor_id']} ({'alive' if doc['supervisor_alive'] else 'NOT RESPONDING'})"
    ]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    for j in jobs:
        if j["error"] and j["state"] in ERROR_STATES:
            lines.append(f"{j['unique_id']}: {str(j['error']).strip().splitlines()[-1]}")
    for j in jobs:
        lines += [f"data: {line}" for line in data_warnings(str(j["unique_id"]), j.get("data") or {})]
    problems = doc["problems"]
    assert isinstance(problems, dict)
    lines += [f"config problem: {text}" for text in problems.values()]
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@redis_option
@supervisor_option
def status(as_json: bool, redis_url: str | None, supervisor_id: str | None) -> None:
    """Show every job: state, process, host, restarts, last heartbeat."""
    registry, record = find_registry(redis_url, supervisor_id)
    report = collect_status(registry, record.info)
    doc = status_document(record.supervisor_id, report.jobs, report.supervisor_alive, report.problems)
    if as_json:
        click.echo(msgspec.json.encode(doc).decode())
    else:
        click.echo(render_table(doc))
