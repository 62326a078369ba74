"""``enrgdaq status``: every job, its state and where it runs."""

from __future__ import annotations

import time
from datetime import datetime

import click
import msgspec

from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.control.status_document import (
    ERROR_STATES,
    data_warnings,
    status_report,
)


def _age(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = time.time() - datetime.fromisoformat(iso).timestamp()
    return f"{seconds:.1f}s ago" if seconds >= 0 else f"in {-seconds:.1f}s"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_nodes(nodes: list[dict[str, object]]) -> list[str]:
    """Every node on the Redis: host, last heartbeat, ``alive``/``lost``, its jobs per state."""
    if not nodes:
        return []
    rows = [["NODE", "HOST", "HEARTBEAT", "STATE", "JOBS"]]
    for n in nodes:
        jobs = n.get("jobs") or {}
        assert isinstance(jobs, dict)
        rows.append(
            [
                str(n["supervisor_id"]),
                str(n.get("hostname") or "-"),
                _age(n.get("last_heartbeat")),  # type: ignore[arg-type]
                str(n.get("state") or ("alive" if n.get("alive") else "lost")),
                ", ".join(f"{count} {state}" for state, count in jobs.items()) or "-",
            ]
        )
    return ["nodes:", *("  " + line for line in _columns(rows))]


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
    if doc.get("api_url"):
        lines.append(f"REST API and status page: {doc['api_url']}")
    nodes = doc.get("nodes") or []
    assert isinstance(nodes, list)
    lines += render_nodes(nodes)
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@redis_option
@supervisor_option
def status(as_json: bool, redis_url: str | None, supervisor_id: str | None) -> None:
    """Show every job: state, process, host, restarts, last heartbeat."""
    registry, record = find_registry(redis_url, supervisor_id)
    doc = status_report(registry, record.info)
    if as_json:
        click.echo(msgspec.json.encode(doc).decode())
    else:
        click.echo(render_table(doc))
