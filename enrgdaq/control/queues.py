"""Node-qualified queue names: several nodes (supervisors) on one shared Redis.

On the wire every queue belongs to a node: a job of node ``daq-02`` on queue ``caen`` is sent
to ``caen@daq-02``, the ticks of that node's supervisor to ``supervisor@daq-02``. A person
still starts ``celery -A enrgdaq worker -Q caen``: when the worker starts, every name it was
given without an ``@`` becomes ``<name>@<this node>`` (:func:`qualify_worker_queues`, on
Celery's ``celeryd_after_setup`` signal, which exists to change queues after ``-Q``). So a
``-Q caen`` worker on one node never takes another node's ``caen`` jobs.

*This node* is ``ENRGDAQ_NODE`` when set, else the ``supervisor_id`` of the config directory's
``supervisor.toml`` (``ENRGDAQ_CONFIG_DIR``), else the default supervisor id.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from enrgdaq.constants import NODE_ENV, SUPERVISOR_QUEUE

logger = logging.getLogger(__name__)

NODE_SEPARATOR = "@"


def node_queue(queue: str, node: str) -> str:
    """``queue`` as node ``node``'s queue on the wire; a name with an ``@`` is left as it is."""
    return queue if NODE_SEPARATOR in queue else f"{queue}{NODE_SEPARATOR}{node}"


def base_queue(queue: str) -> str:
    """The name a person types (``caen``) of a wire queue name (``caen@daq-02``)."""
    return queue.split(NODE_SEPARATOR, 1)[0]


def this_node(env: Mapping[str, str] = os.environ) -> str:
    """The node this process belongs to: ``ENRGDAQ_NODE``, else its config directory's supervisor id.

    A broken ``supervisor.toml`` raises its :class:`~enrgdaq.errors.ConfigError`: a worker
    that guessed its node would take another node's jobs.
    """
    explicit = env.get(NODE_ENV, "").strip()
    if explicit:
        return explicit
    from enrgdaq import settings
    from enrgdaq.config.loader import load_supervisor_config

    return load_supervisor_config(settings.config_dir(env)).info.supervisor_id


_worker_node: list[str] = []
"""This process's node, once known (a pool child inherits it from the worker that forked it)."""


def worker_node() -> str:
    """:func:`this_node`, read once per process (its config file is read only the first time)."""
    if not _worker_node:
        _worker_node.append(this_node())
    return _worker_node[0]


def job_node(config_text: str, supervisor_id: str) -> str:
    """The node a job runs on: its TOML's ``node``, else the supervisor that registered it."""
    try:
        node = tomllib.loads(config_text).get("node") if config_text else None
    except tomllib.TOMLDecodeError:
        node = None
    return node if isinstance(node, str) and node else supervisor_id


def qualify_worker_queues(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """``celeryd_after_setup``: the worker consumes ``<name>@<this node>`` for every ``-Q name``."""
    if instance is None:
        return
    queues = instance.app.amqp.queues
    names = [name for name in list(queues.consume_from or {}) if NODE_SEPARATOR not in name]
    if not names:
        return
    node = worker_node()
    for name in names:
        # queues[...] makes a missing queue the way -Q and a sender do (its own direct exchange)
        queues.select_add(queues[node_queue(name, node)])
        queues.deselect([name])
    logger.info("node '%s': consuming %s", node, ", ".join(sorted(node_queue(n, node) for n in names)))


def route_ticks(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
    """``task_routes``: beat's ticks go to this node's supervisor (``supervisor@<node>``)."""
    if name.startswith("enrgdaq.supervisor."):
        return {"queue": node_queue(SUPERVISOR_QUEUE, worker_node())}
    return None
