"""Celery settings of ENRGDAQ (``celery -A enrgdaq`` loads this module).

The broker is the control-plane Redis, from ``ENRGDAQ_REDIS_URL``. DAQ job
tasks run for days, so the settings follow ``docs/celery.md``: early ack (the
supervisor, not Celery's redelivery, restarts jobs), one task per pool slot,
no result backend, task events on for Flower, and a soft shutdown window in
which jobs flush and stop.
"""

from enrgdaq.constants import (
    DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS,
    DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS,
    DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS,
)
from enrgdaq.settings import redis_url

broker_url = redis_url(None)
broker_connection_retry_on_startup = True
broker_transport_options = {"health_check_interval": 10, "socket_keepalive": True}
result_backend = None
task_ignore_result = True

task_acks_late = False
worker_prefetch_multiplier = 1
worker_disable_prefetch = True
worker_pool = "enrgdaq.control.pool:TaskPool"
worker_cancel_long_running_tasks_on_connection_loss = True
worker_send_task_events = True
task_send_sent_event = False

# SIGTERM is a warm shutdown: the worker asks its jobs to stop (a signal handler in
# enrgdaq.control.signals) and exits when they have; a job that ignores the request
# is ended after DAQ_JOB_STOP_GRACE_SECONDS (5 s). Do not remap SIGTERM to SIGQUIT:
# Celery's soft shutdown sleeps its whole timeout even once every task has ended.
# The soft window below only applies to a cold shutdown (SIGQUIT, a second Ctrl-C).
worker_soft_shutdown_timeout = 10.0
worker_enable_soft_shutdown_on_idle = False

task_default_queue = "default"
# Beat's ticks go to this node's supervisor, ``supervisor@<node>`` (enrgdaq.control.queues): several
# nodes share one Redis. A worker started with ``-Q name`` consumes ``name@<node>``.
task_routes = ("enrgdaq.control.queues:route_ticks",)

beat_scheduler = "celery.beat:Scheduler"
beat_max_loop_interval = 1.0


def _tick(task: str, seconds: float) -> dict[str, object]:
    # Expire a tick that waited longer than a few periods: a late tick is worthless.
    return {
        "task": task,
        "schedule": seconds,
        "options": {"expires": max(4 * seconds, 1.0)},  # the queue: task_routes
    }


beat_schedule = {
    "enrgdaq-routes": _tick("enrgdaq.supervisor.routes", DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS),
    "enrgdaq-heartbeat": _tick(
        "enrgdaq.supervisor.heartbeat", DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS
    ),
    "enrgdaq-stats": _tick("enrgdaq.supervisor.stats", DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS),
}
