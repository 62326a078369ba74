"""What the ``enrgdaq.run_daq_job`` task does inside its worker process.

One run of one job: claim the job (a lease in Redis, so that a job never
runs twice whatever Celery redelivers), build the job from its registered
config, run its ``start()`` until it ends, and record how it ended. The
record is the only way a restart is decided; Celery's redelivery never is.

A job pinned to another node (``node = "daq-02"`` in its TOML) runs there with that node's
message plane and ring directory (the record of the node this worker belongs to); its lease,
record and restarts stay with the supervisor that registered it.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from enrgdaq import settings
from enrgdaq.config.loader import load_job_text
from enrgdaq.control import joblog
from enrgdaq.control.connection import connect
from enrgdaq.control.flower_progress import FlowerProgress
from enrgdaq.control.keeper import LeaseKeeper
from enrgdaq.control.lifecycle import Outcome
from enrgdaq.control.masking import mask_text
from enrgdaq.control.node import SupervisorRecord, plane_missing_here, this_host
from enrgdaq.control.queues import worker_node
from enrgdaq.control.registry import JobRegistry
from enrgdaq.daq.types import load_plugins
from enrgdaq.errors import ConfigError, NodeNotHereError

logger = logging.getLogger(__name__)


class JobRun:
    def __init__(self, supervisor_id: str, unique_id: str, task_id: str, redis_url: str | None = None):
        self.supervisor_id = supervisor_id
        self.unique_id = unique_id
        self.task_id = task_id
        self.registry = JobRegistry(connect(redis_url), supervisor_id)

    def run(self, flower: tuple[Any, str | None, str | None] | None = None) -> str:
        """Run the job with every log record of this process going to the job's log stream.

        ``flower``: the Celery app, the worker's name and the task's shown name, to send the
        job's progress to Flower (:mod:`enrgdaq.control.flower_progress`); None sends none.
        """
        handler = joblog.install(self.registry.redis, self.supervisor_id, self.unique_id)
        progress = None
        if flower is not None:
            app, hostname, task_name = flower
            progress = FlowerProgress(app, self.task_id, hostname, self.unique_id, task_name)
        try:
            return self._run(progress)
        finally:
            joblog.uninstall(handler)

    def _run(self, progress: FlowerProgress | None) -> str:
        claim = self.registry.claim(self.unique_id, self.task_id, os.getpid(), this_host())
        if claim != "ok":
            logger.info("[%s] run %s not started: %s", self.unique_id, self.task_id, claim)
            return f"not started: {claim}"
        keeper = LeaseKeeper(self.registry, self.unique_id, self.task_id, progress)
        if progress is not None:
            progress.start()
        keeper.start()
        outcome, error, backoff_max = Outcome.CRASHED, "", 60.0
        crash = ""
        try:
            supervisor = SupervisorRecord.load(self.registry.redis, self.supervisor_id)
            backoff_max = supervisor.restart_backoff_max_seconds
            outcome, error = self._run_job(supervisor, keeper)
        except ConfigError as exc:
            # Running it again cannot help: crashed, with the error, until its file changes.
            outcome, error = Outcome.INVALID, str(exc)
            logger.error("[%s] not restarted, its configuration cannot work: %s", self.unique_id, exc)
        except SystemExit as exc:
            if isinstance(exc.code, int) and exc.code < 0:
                # A pool child ends on a signal this way (billiard exits with -(256 - signum)): a
                # terminate (Flower, `celery control`), which the worker's revoke handler records
                # as a person's stop, or the pool shutting down. Not a crash of the job.
                outcome, error = Outcome.STOPPED, f"ended by signal {256 + exc.code}: terminated"
                logger.warning("[%s] %s", self.unique_id, error)
            else:
                outcome, error = Outcome.CRASHED, f"the job called sys.exit({exc.code!r})"
                logger.error("[%s] crashed: %s", self.unique_id, error)
            raise
        except BaseException as exc:
            outcome, error = Outcome.CRASHED, "".join(traceback.format_exception(exc)).strip()
            crash = mask_text(f"crashed: {type(exc).__name__}: {exc}".splitlines()[0])[:300]
            logger.exception("[%s] crashed: %s", self.unique_id, exc)
            raise
        finally:
            keeper.close()
            if progress is not None:
                if crash:
                    progress.say(crash)  # Flower's result: why, beside its FAILURE
                progress.close()
            keeper.write_stats()
            state = self.registry.end(self.unique_id, self.task_id, outcome, error, backoff_max=backoff_max)
            logger.info("[%s] run ended (%s) -> %s", self.unique_id, outcome.value, state)
        return outcome.value

    def _node_record(self, supervisor: SupervisorRecord, pinned: str | None) -> SupervisorRecord:
        """The record of the node this run is on: the registering supervisor's, unless the job is
        pinned to another node (then this worker's node, whose queue delivered it)."""
        if not pinned or pinned == supervisor.supervisor_id:
            return supervisor
        here = worker_node()
        if here != pinned:
            logger.warning("[%s] pinned to node '%s' but runs on node '%s'", self.unique_id, pinned, here)
        logger.info("[%s] runs on node '%s' for supervisor '%s'", self.unique_id, here, self.supervisor_id)
        return SupervisorRecord.load(self.registry.redis, here)

    def _run_job(self, supervisor: SupervisorRecord, keeper: LeaseKeeper) -> tuple[Outcome, str]:
        # Guarded: a plugin that fails to import only matters to the jobs whose class it defines.
        here = supervisor.config_dir if os.path.isdir(supervisor.config_dir) else settings.config_dir()
        load_plugins(supervisor.plugins, here)
        record = self.registry.get(self.unique_id)
        if record is None:
            return Outcome.STOPPED, "job was removed"
        spec = load_job_text(record.config, record.config_file or f"{self.unique_id}.toml")
        node = self._node_record(supervisor, getattr(spec.config, "node", None))
        missing = plane_missing_here(node)
        if missing is not None:
            raise NodeNotHereError(missing)
        job = spec.daq_job_cls(
            spec.config,
            supervisor_info=node.info,
            instance_id=record.restarts,
            raw_config=record.config,
            zmq_xpub_url=node.xpub_url,
            zmq_xsub_url=node.xsub_url,
        )
        keeper.job = job
        if node.data_plane is not None:
            job.configure_data_plane(node.data_plane)
        try:
            if keeper.stop_requested:
                job.request_stop()
            self.registry.mark_running(self.unique_id, self.task_id)
            logger.info("[%s] running %s (pid %d)", self.unique_id, spec.daq_job_type, os.getpid())
            job.start()
        finally:
            record = self.registry.get(self.unique_id)
            job.free(for_good=record is None or record.desired != "run" or record.removed)
        if keeper.stop_requested or keeper.lost:
            return Outcome.STOPPED, ""
        return Outcome.EXITED, "start() returned without a stop request"
