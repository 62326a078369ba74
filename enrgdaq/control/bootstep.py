"""The supervisor as a bootstep of the worker that consumes the ``supervisor`` queue.

``celery -A enrgdaq worker -Q supervisor`` starts a worker like any other; this
step notices the queue and, in the worker's main process, loads the config
directory (``ENRGDAQ_CONFIG_DIR``, default ``configs/``), starts this node's
ZMQ proxy, registers and dispatches the jobs, and listens for failed tasks.
The beat ticks then run in this worker's pool.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps

from enrgdaq.constants import CONFIG_DIR_ENV, NODE_ENV, SUPERVISOR_ID_ENV, SUPERVISOR_QUEUE
from enrgdaq.control.queues import base_queue
from enrgdaq.errors import ConfigError

logger = logging.getLogger(__name__)


def preload_job_runtime() -> None:
    """Import what a job run needs before the pool forks, so that a job starts in milliseconds."""
    import enrgdaq.control.runner
    import enrgdaq.daq.jobs.store.csv
    import enrgdaq.daq.jobs.test_job
    import enrgdaq.message.client  # noqa: F401


def check_node(supervisor_id: str) -> None:
    """Refuse an ``ENRGDAQ_NODE`` that names another node than this supervisor's own id: its jobs
    would be dispatched to queues that this node's workers do not consume."""
    node = os.environ.get(NODE_ENV, "").strip()
    if node and node != supervisor_id:
        raise ConfigError(
            f"{NODE_ENV}={node!r} but this supervisor's supervisor.toml says supervisor_id = "
            f"{supervisor_id!r}: a node is named by its supervisor id; unset {NODE_ENV} or make them equal"
        )


class SupervisorStep(bootsteps.StartStopStep):
    label = "ENRGDAQ supervisor"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.supervisor: Any = None
        queues = worker.app.amqp.queues.consume_from or {}
        # -Q supervisor (it becomes supervisor@<node> when the worker starts; see control.queues)
        self.enabled = any(base_queue(name) == SUPERVISOR_QUEUE for name in queues)
        if not self.enabled:
            preload_job_runtime()
            return
        from enrgdaq.supervisor import Supervisor

        config_dir = os.environ.get(CONFIG_DIR_ENV, "configs/")
        self.supervisor = Supervisor(daq_job_config_path=config_dir, celery_app=worker.app)
        check_node(self.supervisor.supervisor_id)
        # Set before the pool forks, so that the tick tasks know which supervisor they serve.
        os.environ[SUPERVISOR_ID_ENV] = self.supervisor.supervisor_id

    def start(self, worker: Any) -> None:
        if self.supervisor is not None:
            from enrgdaq.control.signals import log_node_to_redis

            log_node_to_redis()  # before init: its dispatches belong in the node's log
            self.supervisor.init()

    def stop(self, worker: Any) -> None:
        if self.supervisor is not None:
            self.supervisor.close()

    def shutdown(self, worker: Any) -> None:
        self.stop(worker)
