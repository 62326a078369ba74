"""``enrgdaq start | stop | restart``: a person's control of jobs, through the one operator
surface the REST API uses too (:class:`enrgdaq.control.operations.Operator`).

A stop lasts (no restart until ``start``); ``start`` takes a stopped job's id, or a TOML file
to add as a new job; ``restart`` ends a running job's process and starts a new one. Each waits
until the job is where it was asked to be, showing progress on stderr after a second.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

import click
import msgspec

from enrgdaq.cli.progress import with_progress
from enrgdaq.cli.target import find_operator, redis_option, supervisor_option
from enrgdaq.control.operations import Operator
from enrgdaq.errors import JobConflictError

START_WAIT_SECONDS = 10.0
_STARTING = ("registered", "waiting", "starting", "restart_scheduled")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _line(job: dict[str, Any], note: str = "") -> str:
    pid = f", pid {job['pid']}" if job.get("pid") and job.get("state") == "running" else ""
    return f"{job['unique_id']}: {job['state']}{pid}{note}"


def _emit(results: list[dict[str, Any]], as_json: bool, notes: dict[str, str] | None = None) -> None:
    if as_json:
        click.echo(msgspec.json.encode(results).decode())
        return
    for job in results:
        click.echo(_line(job, (notes or {}).get(job["unique_id"], "")))


def _add_and_wait(operator: Operator, text: str, name: str) -> dict[str, Any]:
    """Add the job, then wait (as ``start`` does) until its first run is past starting."""
    job = operator.add_job(text, name)
    deadline = time.monotonic() + START_WAIT_SECONDS
    while job["state"] in _STARTING and time.monotonic() < deadline:
        time.sleep(0.05)
        job = operator.job(job["unique_id"])
    return job


def _is_file(target: str) -> bool:
    return target.endswith(".toml") or os.path.isfile(target)


@click.command()
@click.argument("unique_ids", nargs=-1, required=True)
@json_option
@redis_option
@supervisor_option
def stop(
    unique_ids: tuple[str, ...], as_json: bool, redis_url: str | None, supervisor_id: str | None
) -> None:
    """Stop jobs; they stay stopped (never restarted) until `enrgdaq start`."""
    operator = find_operator(redis_url, supervisor_id, "enrgdaq stop")
    results, notes = [], {}
    for uid in unique_ids:
        try:
            results.append(with_progress(f"stopping {uid}", partial(operator.stop, uid)))
        except JobConflictError:
            results.append(operator.job(uid))  # stopped already: what was asked for is true
            notes[uid] = " (already)"
    _emit(results, as_json, notes)


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="FILE|ID...")
@json_option
@redis_option
@supervisor_option
def start(targets: tuple[str, ...], as_json: bool, redis_url: str | None, supervisor_id: str | None) -> None:
    """Start stopped jobs by id, or add a job from a TOML file (it is copied into the config
    directory, where it stays)."""
    operator = find_operator(redis_url, supervisor_id, "enrgdaq start")
    results, notes = [], {}
    for target in targets:
        if _is_file(target):
            try:
                with open(target, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise click.BadParameter(f"cannot read {target}: {exc}", param_hint="FILE") from None
            name = os.path.splitext(os.path.basename(target))[0]
            job = with_progress(f"adding {target}", partial(_add_and_wait, operator, text, name))
            results.append(job)
            notes[job["unique_id"]] = f" (added from {target} as {job.get('config_file') or name})"
            continue
        try:
            results.append(with_progress(f"starting {target}", partial(operator.start, target)))
        except JobConflictError:
            results.append(operator.job(target))  # running already: what was asked for is true
            notes[target] = " (already)"
    _emit(results, as_json, notes)


@click.command()
@click.argument("unique_ids", nargs=-1, required=True)
@json_option
@redis_option
@supervisor_option
def restart(
    unique_ids: tuple[str, ...], as_json: bool, redis_url: str | None, supervisor_id: str | None
) -> None:
    """End each job's process and start a new one now (a stopped job is started)."""
    operator = find_operator(redis_url, supervisor_id, "enrgdaq restart")
    results, notes = [], {}
    for uid in unique_ids:
        before = operator.job(uid).get("pid")
        job = with_progress(f"restarting {uid}", partial(operator.restart, uid))
        results.append(job)
        if before and job.get("pid") and job["pid"] != before:
            notes[uid] = f" (was pid {before})"
    _emit(results, as_json, notes)
