"""``enrgdaq jobs``: one compact line per job, with its rates in and out (messages per second)."""

from __future__ import annotations

from typing import Any

import click
import msgspec

from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.control.status_document import status_report

HEADER = ["JOB", "TYPE", "QUEUE", "STATE", "RESTARTS", "IN/s", "OUT/s"]


def job_rows(doc: dict[str, Any], stats: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The jobs of a status document with the rates the lease keepers wrote (0 when not running)."""
    rows = []
    for job in doc["jobs"]:
        s = stats.get(job["unique_id"], {}) if job["state"] in ("running", "stalled") else {}
        rows.append(
            {
                "unique_id": job["unique_id"],
                "daq_job_type": job["daq_job_type"],
                "queue": job["queue"],
                "state": job["state"],
                "restarts": job["restarts"],
                "in_per_s": float(s.get("in_per_s") or 0.0),
                "out_per_s": float(s.get("out_per_s") or 0.0),
                "in_bytes_per_s": float(s.get("in_bytes_per_s") or 0.0),
                "out_bytes_per_s": float(s.get("out_bytes_per_s") or 0.0),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    table = [HEADER] + [
        [
            str(r["unique_id"]),
            str(r["daq_job_type"]),
            str(r["queue"] or "-"),
            str(r["state"]),
            str(r["restarts"]),
            f"{r['in_per_s']:.1f}",
            f"{r['out_per_s']:.1f}",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@redis_option
@supervisor_option
def jobs(as_json: bool, redis_url: str | None, supervisor_id: str | None) -> None:
    """List jobs: id, type, queue, state, restarts, messages per second in and out."""
    registry, record = find_registry(redis_url, supervisor_id)
    doc = status_report(registry, record.info)
    rows = job_rows(doc, {r.unique_id: r.stats_dict for r in registry.all()})
    click.echo(msgspec.json.encode(rows).decode() if as_json else render(rows))
