"""The status document: what ``enrgdaq status --json`` prints and the REST API serves.

One shape for scripts, the CLI's table and the status page, built from the registry by
:func:`status_report`.
"""

from __future__ import annotations

import json

from enrgdaq.control.keys import Keys
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.masking import mask_value
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.status import JobStatus, collect_status
from enrgdaq.models import SupervisorInfo

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
                "last_error": j.last_error,
                "last_error_at": j.last_error_at,
                "config_file": j.config_file,
                "messages_in": j.stats.get("processed", 0),
                "messages_out": j.stats.get("sent", 0),
                "data": data_health(j.stats),
            }
            for j in jobs
        ],
        "problems": problems,
    }


def api_url(registry: JobRegistry) -> str | None:
    """Where this supervisor's REST API listens, while it serves (its key has a TTL)."""
    raw = registry.redis.get(Keys(registry.keys.supervisor_id).api)
    if not raw:
        return None
    try:
        url = json.loads(raw).get("url")
    except (ValueError, AttributeError):
        return None
    return str(url) if url else None


def status_report(registry: JobRegistry, info: SupervisorInfo) -> dict[str, object]:
    """The whole status document of one supervisor, read from Redis now, with every secret an
    error text might quote (a database URL's password, a webhook path) masked.

    ``nodes``: every node on this Redis, ``alive`` or ``lost`` (:mod:`enrgdaq.control.nodes`)."""
    from enrgdaq.control.nodes import list_nodes

    report = collect_status(registry, info)
    doc = status_document(info.supervisor_id, report.jobs, report.supervisor_alive, report.problems)
    doc["api_url"] = api_url(registry)
    doc["nodes"] = list_nodes(registry.redis)
    masked: dict[str, object] = mask_value(doc)
    return masked
