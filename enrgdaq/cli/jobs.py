"""``enrgdaq stop JOB`` and ``enrgdaq start JOB``: a person's stop, never undone by a restart."""

from __future__ import annotations

import click

from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.errors import JobNotFoundError


@click.command()
@click.argument("unique_ids", nargs=-1, required=True)
@redis_option
@supervisor_option
def stop(unique_ids: tuple[str, ...], redis_url: str | None, supervisor_id: str | None) -> None:
    """Stop jobs; they stay stopped until `enrgdaq start`."""
    registry, _ = find_registry(redis_url, supervisor_id)
    for uid in unique_ids:
        result = registry.request_stop(uid, "stopped by a person (enrgdaq stop)")
        if result == "unknown":
            raise JobNotFoundError(f"no job '{uid}' in supervisor '{registry.keys.supervisor_id}'")
        click.echo(f"{uid}: {result}")


@click.command()
@click.argument("unique_ids", nargs=-1, required=True)
@redis_option
@supervisor_option
def start(unique_ids: tuple[str, ...], redis_url: str | None, supervisor_id: str | None) -> None:
    """Start jobs that were stopped or crashed for good."""
    registry, _ = find_registry(redis_url, supervisor_id)
    for uid in unique_ids:
        result = registry.request_start(uid)
        if result == "unknown":
            raise JobNotFoundError(f"no job '{uid}' in supervisor '{registry.keys.supervisor_id}'")
        click.echo(f"{uid}: {result}")
