"""Finding the running system a command talks to: flags, environment, or ``enrgdaq up`` here."""

from __future__ import annotations

import logging

import click
import redis

from enrgdaq.control.connection import connect, redact
from enrgdaq.control.node import SupervisorRecord
from enrgdaq.control.operations import Operator
from enrgdaq.control.registry import JobRegistry
from enrgdaq.errors import SupervisorNotFoundError
from enrgdaq.local.state_file import read_state
from enrgdaq.settings import DEFAULT_REDIS_URL, configured_redis_url


def find_registry(redis_url: str | None, supervisor_id: str | None) -> tuple[JobRegistry, SupervisorRecord]:
    state = read_state() or {}
    url = redis_url or configured_redis_url(None) or state.get("redis_url") or DEFAULT_REDIS_URL
    client = connect(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SupervisorNotFoundError(
            "no ENRGDAQ system found: no `enrgdaq up` running in this directory and no Redis at "
            f"{redact(url)} ({type(exc).__name__}). Pass --redis-url or set ENRGDAQ_REDIS_URL."
        ) from exc
    sid = supervisor_id or state.get("supervisor_id")
    if sid:
        record = SupervisorRecord.load(client, sid)
    else:
        records = SupervisorRecord.load_any(client)
        if len(records) != 1:
            names = ", ".join(r.supervisor_id for r in records) or "none"
            raise SupervisorNotFoundError(
                f"{len(records)} supervisors in this Redis ({names}); choose one with --supervisor"
            )
        record = records[0]
    return JobRegistry(client, record.supervisor_id), record


def find_operator(redis_url: str | None, supervisor_id: str | None, actor: str) -> Operator:
    """The operator surface (the REST API's too) for the system these flags or ``up`` name."""
    registry, record = find_registry(redis_url, supervisor_id)
    # The command prints what it did; the operator's own INFO lines are for the REST API's log.
    logging.getLogger("enrgdaq.control.operations").setLevel(logging.WARNING)
    return Operator(registry.redis, record.supervisor_id, actor=actor)


redis_option = click.option(
    "--redis-url",
    envvar="ENRGDAQ_REDIS_URL",
    default=None,
    help="Redis of the control plane (default: the one `enrgdaq up` started here).",
)
supervisor_option = click.option(
    "--supervisor", "supervisor_id", default=None, help="Supervisor id (default: the only one)."
)
