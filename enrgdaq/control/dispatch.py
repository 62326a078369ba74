"""Sending a job's task to its queue, named so that Flower shows which job it is.

The queue on the wire is the job's node's (``<queue>@<node>``, :mod:`enrgdaq.control.queues`):
the node its TOML pins it to (``node = "daq-02"``), else the supervisor's own. A pinned job
waits in its node's queue while that node has no worker; it is never sent to another node.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.queues import job_node, node_queue
from enrgdaq.control.registry import JobRegistry

logger = logging.getLogger(__name__)

RUN_TASK_NAME = "enrgdaq.run_daq_job"
REDISPATCH_DELAY_SECONDS = 1.0


def task_display_name(daq_job_type: str, unique_id: str) -> str:
    """The name Flower and the worker logs show for a job's task."""
    return f"{daq_job_type}[{unique_id}]"


def dispatch_due(app: Any, registry: JobRegistry, now: float | None = None) -> list[str]:
    """Send the task of every job whose (re)start is due; returns their unique ids."""
    sent = []
    supervisor_id = registry.keys.supervisor_id
    for unique_id in registry.take_due(time.time() if now is None else now):
        task_id = str(uuid.uuid4())
        target = registry.prepare_dispatch(unique_id, task_id)
        if target is None:
            continue
        base, daq_job_type = target
        node = job_node(str(registry.redis.hget(registry.keys.job(unique_id), "config") or ""), supervisor_id)
        queue = node_queue(base, node)
        try:
            app.send_task(
                RUN_TASK_NAME,
                args=[registry.keys.supervisor_id, unique_id],
                task_id=task_id,
                queue=queue,
                shadow=task_display_name(daq_job_type, unique_id),
            )
        except Exception:
            logger.exception(
                "[%s] could not send its task; retrying in %.0f s", unique_id, REDISPATCH_DELAY_SECONDS
            )
            registry.redis.hset(registry.keys.job(unique_id), "state", JobState.RESTART_SCHEDULED.value)
            registry.reschedule(unique_id, time.time() + REDISPATCH_DELAY_SECONDS)
            continue
        logger.info(
            "[%s] dispatched to queue '%s' of node '%s' (%s) as task %s",
            unique_id,
            base,
            node,
            queue,
            task_id,
        )
        announce_sent(
            app,
            task_id,
            task_display_name(daq_job_type, unique_id),
            [registry.keys.supervisor_id, unique_id],
            queue,
        )
        sent.append(unique_id)
    return sent


def announce_sent(app: Any, task_id: str, name: str, args: list[str], queue: str) -> None:
    """Tell Flower a job's task was sent, with its queue (so a waiting job shows as pending).

    ``task_send_sent_event`` stays off for the app: it would announce every
    beat tick as well.
    """
    try:
        with app.events.default_dispatcher() as dispatcher:
            dispatcher.send(
                "task-sent",
                uuid=task_id,
                name=name,
                args=repr(args),
                kwargs="{}",
                retries=0,
                eta=None,
                expires=None,
                root_id=task_id,
                parent_id=None,
                queue=queue,
                exchange=queue,
                routing_key=queue,
            )
    except Exception:
        logger.debug("could not send the task-sent event for %s", task_id, exc_info=True)
