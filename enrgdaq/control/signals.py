"""Worker signal handlers: a worker that shuts down stops its jobs; a revoke is a person's stop;
a worker started with ``-Q name`` consumes this node's ``name@<node>`` (:mod:`enrgdaq.control.queues`).

Connected to the app by :func:`connect_signals`, which :mod:`enrgdaq.celery` calls once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from enrgdaq.control.connection import connect
from enrgdaq.control.dispatch import RUN_TASK_NAME
from enrgdaq.control.registry import JobRegistry

logger = logging.getLogger(__name__)


_apps: list[Any] = []
"""The app whose workers these handlers serve (set by :func:`connect_signals`)."""


def connect_signals(app: Any) -> None:
    """Connect the handlers of this module for ``app``'s worker processes."""
    from enrgdaq.control.queues import qualify_worker_queues

    _apps[:] = [app]
    signals.celeryd_after_setup.connect(qualify_worker_queues, weak=False)
    signals.worker_shutting_down.connect(stop_jobs_of_this_worker, weak=False)
    signals.task_revoked.connect(revoked_is_a_stop, weak=False)
    signals.heartbeat_sent.connect(refresh_running_jobs_in_flower, weak=False)
    signals.after_setup_logger.connect(quiet_ticks, weak=False)
    signals.worker_ready.connect(log_node_to_redis, weak=False)
    signals.worker_process_init.connect(log_node_to_redis, weak=False)


def log_node_to_redis(**_: Any) -> None:
    """The supervisor worker's processes (main and pool) log to the node's stream (``_node``).

    Only the supervisor worker knows its supervisor id (its bootstep sets it in the
    environment before the pool forks); job workers' records go to their jobs' streams
    while a job runs (:mod:`enrgdaq.control.runner`).
    """
    import os

    from enrgdaq.constants import SUPERVISOR_ID_ENV
    from enrgdaq.control import joblog
    from enrgdaq.control.keys import NODE_LOG

    supervisor_id = os.environ.get(SUPERVISOR_ID_ENV)
    if not supervisor_id or not _apps or joblog.installed(NODE_LOG) is not None:
        return
    try:
        joblog.install(connect(_broker_url()), supervisor_id, NODE_LOG)
    except Exception:
        logger.debug("could not send this process's log to Redis", exc_info=True)


def _broker_url() -> str:
    return str(_apps[0].conf.broker_url)


def _job_of(request: Any) -> tuple[str, str, str] | None:
    """(supervisor id, unique id, task id) of a run_daq_job request, else None."""
    # request.name is the shadow name (DAQJobTest[uid]); the task object has the real one. A
    # revoke hands the request's Context instead, whose ``task`` is the real name as text.
    task = getattr(request, "task", None)
    name = task if isinstance(task, str) else getattr(task, "name", None) or getattr(request, "type", None)
    if name != RUN_TASK_NAME:
        return None
    args = list(getattr(request, "args", None) or [])
    if len(args) < 2:
        return None
    return str(args[0]), str(args[1]), str(request.id)


def stop_jobs_of_this_worker(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    """Ask every job this worker runs to end, so that the worker can exit within its grace."""
    from celery.worker import state

    for request in list(state.active_requests):
        job = _job_of(request)
        if job is None:
            continue
        supervisor_id, unique_id, task_id = job
        try:
            JobRegistry(connect(_broker_url()), supervisor_id).stop_run(unique_id, task_id)
            logger.info("[%s] worker shutting down (%s): job asked to stop", unique_id, how)
        except Exception:
            logger.exception("[%s] could not ask the job to stop", unique_id)


def revoked_is_a_stop(request: Any = None, terminated: bool = False, **_: Any) -> None:
    """A revoke from Flower or ``celery control`` stops the job for good (no restart)."""
    job = _job_of(request)
    if job is None:
        return
    supervisor_id, unique_id, _task_id = job
    try:
        JobRegistry(connect(_broker_url()), supervisor_id).request_stop(unique_id, "revoked")
        logger.info("[%s] revoked (terminated=%s): will not be restarted", unique_id, terminated)
    except Exception:
        logger.exception("[%s] could not record the revoke", unique_id)


FLOWER_REFRESH_SECONDS = 4.0
_last_refresh = 0.0


def refresh_running_jobs_in_flower(sender: Any = None, **_: Any) -> None:
    """Re-announce this worker's running DAQ job tasks every few seconds.

    Flower learns tasks from events only, and a job task sends its
    ``task-started`` once, when it starts, perhaps days before Flower (or a
    restarted Flower) began to listen. Repeating ``task-received`` and
    ``task-started`` lets Flower show every running job whenever it starts.
    """
    import time

    from celery.worker import state

    global _last_refresh
    now = time.monotonic()
    eventer = getattr(sender, "eventer", None)
    if (
        eventer is None
        or not getattr(eventer, "enabled", False)
        or now - _last_refresh < FLOWER_REFRESH_SECONDS
    ):
        return
    _last_refresh = now
    for request in list(state.active_requests):
        if _job_of(request) is None:
            continue
        try:
            delivery = request.delivery_info or {}
            eventer.send(
                "task-received",
                uuid=request.id,
                name=request.name,
                args=request.argsrepr,
                kwargs=request.kwargsrepr,
                root_id=request.root_id,
                parent_id=request.parent_id,
                retries=0,
                eta=None,
                expires=None,
                exchange=delivery.get("exchange"),
                routing_key=delivery.get("routing_key"),
            )
            # Fields of a RECEIVED that comes after STARTED are mostly ignored: repeat the queue here.
            eventer.send(
                "task-started",
                uuid=request.id,
                exchange=delivery.get("exchange"),
                routing_key=delivery.get("routing_key"),
            )
        except Exception:
            logger.debug("could not refresh task %s in Flower", request.id, exc_info=True)


class _QuietTicks(logging.Filter):
    """Drops the worker's per-task log lines for the 10 Hz supervisor ticks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True  # a failing tick must be seen
        data = getattr(record, "data", None)
        name = data.get("name", "") if isinstance(data, dict) else ""
        return not str(name).startswith("enrgdaq.supervisor.")


def quiet_ticks(logger: logging.Logger | None = None, **_: Any) -> None:
    for name in ("celery.worker.strategy", "celery.app.trace", "celery.worker.request"):
        logging.getLogger(name).addFilter(_QuietTicks())
