"""Every node registered on one Redis: its host, last heartbeat, ``alive`` or ``lost``, its jobs.

A node is a supervisor (its id names the node's queues, ``<queue>@<node>``). It is ``lost``
when its alive key expired: no heartbeat for ``SUPERVISOR_ALIVE_TTL_MS`` (its supervisor or
beat is gone: crashed, killed, its machine down, or stopped). A lost node's jobs that nothing
runs are counted as ``waiting`` (:func:`enrgdaq.control.status.unattended`). ``enrgdaq status``,
its ``--json`` document and the REST API's ``GET /api/nodes`` all list them from here.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from enrgdaq.control.keys import Keys, supervisor_ids_pattern
from enrgdaq.control.node import SupervisorRecord, last_seen
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.status import iso_time, job_status, unattended

ALIVE = "alive"
LOST = "lost"


def _api_url(client: redis.Redis, supervisor_id: str) -> str | None:
    raw = client.get(Keys(supervisor_id).api)
    try:
        url = json.loads(raw).get("url") if raw else None
    except (ValueError, AttributeError):
        return None
    return str(url) if url else None


def job_counts(client: redis.Redis, supervisor_id: str, alive: bool) -> dict[str, int]:
    """Number of the supervisor's jobs in each state, as ``enrgdaq status`` shows them."""
    registry = JobRegistry(client, supervisor_id)
    records = registry.all()
    waiting = unattended(registry, records, alive)
    counts: dict[str, int] = {}
    for record in records:
        state = job_status(record, record.unique_id in waiting).state
        counts[state] = counts.get(state, 0) + 1
    return dict(sorted(counts.items()))


def node_summary(client: redis.Redis, record: SupervisorRecord) -> dict[str, Any]:
    sid = record.supervisor_id
    alive = bool(client.exists(Keys(sid).supervisor_alive))
    return {
        "supervisor_id": sid,
        "hostname": record.hostname,
        "pid": record.pid,
        "alive": alive,
        "state": ALIVE if alive else LOST,
        "last_heartbeat": iso_time(last_seen(client, sid)),
        "started_at": record.started_at,
        "api_url": _api_url(client, sid),
        "jobs": job_counts(client, sid, alive),
    }


def node_ids(client: redis.Redis) -> list[str]:
    """Ids of every supervisor (node) registered in this Redis, sorted; a key scan, so callers on
    a clock (the routes tick) call it at most about once a second."""
    keys = client.scan_iter(match=supervisor_ids_pattern(), count=1000)
    return sorted({str(key).split(":")[1] for key in keys})


def list_nodes(client: redis.Redis) -> list[dict[str, Any]]:
    """Every supervisor registered in this Redis, sorted by id."""
    found = [node_summary(client, record) for record in SupervisorRecord.load_any(client)]
    return sorted(found, key=lambda n: str(n["supervisor_id"]))
