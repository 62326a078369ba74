"""Worker signal handlers: a worker that shuts down stops its jobs; a revoke is a person's stop.

Connected by :mod:`enrgdaq.celery` in every worker process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from enrgdaq.control.connection import connect
from enrgdaq.control.dispatch import RUN_TASK_NAME
from enrgdaq.control.registry import JobRegistry

logger = logging.getLogger(__name__)


def _job_of(request: Any) -> tuple[str, str, str] | None:
    """(supervisor id, unique id, task id) of a run_daq_job request, else None."""
    name = getattr(request, "task_name", None) or getattr(request, "task", None)
    if name != RUN_TASK_NAME:
        return None
    args = list(getattr(request, "args", None) or [])
    if len(args) < 2:
        return None
    return str(args[0]), str(args[1]), str(request.id)


@signals.worker_shutting_down.connect
def stop_jobs_of_this_worker(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    """Ask every job this worker runs to end, so that the worker can exit within its grace."""
    from celery.worker import state

    for request in list(state.active_requests):
        job = _job_of(request)
        if job is None:
            continue
        supervisor_id, unique_id, task_id = job
        try:
            JobRegistry(connect(), supervisor_id).stop_run(unique_id, task_id)
            logger.info("[%s] worker shutting down (%s): job asked to stop", unique_id, how)
        except Exception:
            logger.exception("[%s] could not ask the job to stop", unique_id)


@signals.task_revoked.connect
def revoked_is_a_stop(request: Any = None, terminated: bool = False, **_: Any) -> None:
    """A revoke from Flower or ``celery control`` stops the job for good (no restart)."""
    job = _job_of(request)
    if job is None:
        return
    supervisor_id, unique_id, _task_id = job
    try:
        JobRegistry(connect(), supervisor_id).request_stop(unique_id, "revoked")
        logger.info("[%s] revoked (terminated=%s): will not be restarted", unique_id, terminated)
    except Exception:
        logger.exception("[%s] could not record the revoke", unique_id)


class _QuietTicks(logging.Filter):
    """Drops the worker's per-task log lines for the 10 Hz supervisor ticks."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        name = data.get("name", "") if isinstance(data, dict) else ""
        return not str(name).startswith("enrgdaq.supervisor.")


@signals.after_setup_logger.connect
def quiet_ticks(logger: logging.Logger | None = None, **_: Any) -> None:
    for name in ("celery.worker.strategy", "celery.app.trace", "celery.worker.request"):
        logging.getLogger(name).addFilter(_QuietTicks())
