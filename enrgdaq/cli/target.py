"""Finding the running system a command talks to: flags, environment, or ``enrgdaq up`` here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import click
import redis

from enrgdaq import settings
from enrgdaq.config.loader import load_supervisor_file
from enrgdaq.constants import CONFIG_DIR_ENV, NODE_ENV, SUPERVISOR_CONFIG_FILE_NAME
from enrgdaq.control.connection import connect, redact
from enrgdaq.control.node import SupervisorRecord
from enrgdaq.control.operations import Operator
from enrgdaq.control.registry import JobRegistry
from enrgdaq.errors import ConfigError, SupervisorNotFoundError
from enrgdaq.local.state_file import read_state
from enrgdaq.settings import DEFAULT_REDIS_URL, configured_redis_url


def local_node(env: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """This machine's node as far as the CLI can tell: ``(id or None, where that came from)``.

    ``ENRGDAQ_NODE``, else the ``supervisor_id`` of ``supervisor.toml`` in the config directory
    (``ENRGDAQ_CONFIG_DIR``, default ``configs/``), as a worker finds its node
    (:func:`enrgdaq.control.queues.this_node`) but never guessed: without either it is unknown.
    """
    explicit = env.get(NODE_ENV, "").strip()
    if explicit:
        return explicit, NODE_ENV
    path = os.path.join(settings.config_dir(env), SUPERVISOR_CONFIG_FILE_NAME)
    if not os.path.isfile(path):
        return None, f"no {NODE_ENV} and no {path}"
    try:
        return load_supervisor_file(path).info.supervisor_id, path
    except ConfigError as exc:
        return None, f"{path} cannot be read: {exc}"


def choose_supervisor(
    records: list[SupervisorRecord], env: Mapping[str, str] = os.environ
) -> SupervisorRecord:
    """The supervisor a command means when no ``--supervisor`` names one: this machine's node
    (:func:`local_node`) when it is registered, else the only one; several and none known: an
    error that lists them and says how to choose."""
    node, source = local_node(env)
    found = {r.supervisor_id: r for r in records}
    if node is not None and node in found:
        return found[node]
    if len(records) == 1:
        return records[0]
    if not records:
        raise SupervisorNotFoundError(
            "no supervisor is registered in this Redis: start one with `enrgdaq up CONFIG_DIR` "
            "(or `celery -A enrgdaq worker -Q supervisor`)"
        )
    why = f"this machine's node '{node}' ({source}) is not one of them" if node else f"({source})"
    raise SupervisorNotFoundError(
        f"{len(records)} supervisors (nodes) in this Redis: {', '.join(sorted(found))}; "
        f"which one is meant is not known {why}. Choose one with --supervisor ID, or set "
        f"{NODE_ENV}=ID (or {CONFIG_DIR_ENV} to the node's config directory)"
    )


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
        record = choose_supervisor(SupervisorRecord.load_any(client))
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
    "--supervisor",
    "supervisor_id",
    default=None,
    help="Supervisor (node) id (default: this machine's node, from ENRGDAQ_NODE or the config "
    "directory's supervisor.toml; else the only one).",
)
