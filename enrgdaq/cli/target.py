"""Finding the running system a command talks to: flags, environment, or ``enrgdaq up`` here."""

from __future__ import annotations

import os

import click

from enrgdaq.control.connection import DEFAULT_REDIS_URL, connect
from enrgdaq.control.node import SupervisorRecord
from enrgdaq.control.registry import JobRegistry
from enrgdaq.errors import DAQError
from enrgdaq.local.state_file import read_state


def find_registry(redis_url: str | None, supervisor_id: str | None) -> tuple[JobRegistry, SupervisorRecord]:
    state = read_state() or {}
    url = redis_url or os.environ.get("ENRGDAQ_REDIS_URL") or state.get("redis_url") or DEFAULT_REDIS_URL
    client = connect(url)
    try:
        client.ping()
    except Exception as exc:
        raise click.ClickException(
            "no ENRGDAQ system found: no `enrgdaq up` running in this directory and no Redis at "
            f"the configured URL ({type(exc).__name__}). Pass --redis-url or set ENRGDAQ_REDIS_URL."
        ) from exc
    sid = supervisor_id or state.get("supervisor_id")
    try:
        if sid:
            record = SupervisorRecord.load(client, sid)
        else:
            records = SupervisorRecord.load_any(client)
            if len(records) != 1:
                names = ", ".join(r.supervisor_id for r in records) or "none"
                raise click.ClickException(
                    f"{len(records)} supervisors in this Redis ({names}); choose one with --supervisor"
                )
            record = records[0]
    except DAQError as exc:
        raise click.ClickException(str(exc)) from exc
    return JobRegistry(client, record.supervisor_id), record


redis_option = click.option(
    "--redis-url",
    envvar="ENRGDAQ_REDIS_URL",
    default=None,
    help="Redis of the control plane (default: the one `enrgdaq up` started here).",
)
supervisor_option = click.option(
    "--supervisor", "supervisor_id", default=None, help="Supervisor id (default: the only one)."
)
