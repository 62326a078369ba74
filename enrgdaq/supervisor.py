"""``enrgdaq.supervisor``: the seed's API, on a Celery + Redis control plane.

The supervisor no longer forks jobs. It registers them in Redis and sends one
long-running Celery task per job to the job's queue; workers run them. It
hosts this node's ZMQ proxy and reconciles what runs with what should run.
In a deployment it lives inside ``celery -A enrgdaq worker -Q supervisor``
(see :mod:`enrgdaq.control.bootstep`) and Celery beat drives ``loop()`` and
the heartbeat, stats and routes messages. ``run()`` drives them itself, for
scripts that use the class directly as the original's ``run.py`` did.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enrgdaq import settings
from enrgdaq.config.directory import problem_job_id, read_config_dir
from enrgdaq.config.loader import JobSpec, load_supervisor_config
from enrgdaq.constants import (
    DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS,
    DAQ_JOB_QUEUE_ACTION_TIMEOUT,
    DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS,
    DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS,
    DAQ_SUPERVISOR_LOOP_INTERVAL_SECONDS,
    DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS,
    DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS,
    SESSION_ENV,
    SUPERVISOR_CONFIG_FILE_NAME,
)
from enrgdaq.control.connection import connect, redact
from enrgdaq.control.dispatch import dispatch_due
from enrgdaq.control.events import FailedTaskListenerProcess
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.node import STARTING_ALIVE_TTL_MS, SupervisorRecord, mark_alive, this_host
from enrgdaq.control.reconcile import Reconciler
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.shutdown import stop_all_jobs
from enrgdaq.control.status import SupervisorStatus, collect_status
from enrgdaq.control.sync import remove_orphaned_rings, sync_registry
from enrgdaq.control.watch import remember
from enrgdaq.daq.process import DAQJobProcess
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import ConfigDirNotFoundError, ConfigError, DAQError
from enrgdaq.message.proxy import MessageProxy
from enrgdaq.models import SupervisorConfig

__all__ = [
    "DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS",
    "DAQ_JOB_QUEUE_ACTION_TIMEOUT",
    "DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS",
    "DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS",
    "DAQ_SUPERVISOR_LOOP_INTERVAL_SECONDS",
    "DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS",
    "DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS",
    "RestartDAQJobSchedule",
    "Supervisor",
]


@dataclass
class RestartDAQJobSchedule:
    daq_job_process: DAQJobProcess
    restart_at: datetime


class Supervisor:
    """Registers the jobs of a config directory, hosts the node's proxy, keeps jobs running."""

    config: SupervisorConfig | None
    daq_job_processes: list[DAQJobProcess]
    restart_schedules: list[RestartDAQJobSchedule]

    def __init__(
        self,
        config: SupervisorConfig | None = None,
        daq_job_processes: list[DAQJobProcess] | None = None,
        daq_job_config_path: str = "configs/",
        celery_app: Any = None,
    ) -> None:
        self._daq_job_config_path = daq_job_config_path
        if not os.path.isdir(daq_job_config_path):
            raise ConfigDirNotFoundError(
                f"DAQ job config path '{daq_job_config_path}' does not exist: "
                "give the directory that holds the job TOML files"
            )
        self._logger = logging.getLogger(__name__)
        self._config_given = config is not None
        self.config = config if config is not None else self._load_supervisor_config()
        self._daq_jobs_to_load = daq_job_processes
        self.daq_job_processes = []
        self.restart_schedules = []
        self.daq_job_stats: dict[str, Any] = {}
        self.daq_job_remote_stats: dict[str, Any] = {}
        self.problems: list[ConfigError] = []
        self._is_stopped = False
        self._app = celery_app
        self.run_dir = settings.run_dir(self.config)
        self.supervisor_xpub_url = f"ipc://{os.path.join(self.run_dir, 'xpub.sock')}"
        self.supervisor_xsub_url = f"ipc://{os.path.join(self.run_dir, 'xsub.sock')}"
        self.redis_url = settings.configured_redis_url(self.config) or (
            celery_app.conf.broker_url if celery_app is not None else settings.redis_url(None)
        )
        self.registry: JobRegistry | None = None
        self._proxy: MessageProxy | None = None
        self._events: FailedTaskListenerProcess | None = None

    @property
    def supervisor_id(self) -> str:
        if self.config is None or self.config.info is None:
            return "unknown"
        return self.config.info.supervisor_id

    @property
    def app(self) -> Any:
        if self._app is None:
            from enrgdaq.celery import app

            self._app = app
        return self._app

    # -- start-up --------------------------------------------------------------
    def init(self) -> None:
        """Start the proxy, register the jobs in Redis and dispatch them.

        Call this after creating the instance (as with the original).
        """
        assert self.config is not None
        logging.getLogger("enrgdaq").setLevel(self.config.verbosity.to_logging_level())
        self.registry = JobRegistry(connect(self.redis_url), self.supervisor_id)
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        self._proxy = MessageProxy(self.supervisor_xsub_url, self.supervisor_xpub_url)
        self._proxy.start()
        self._save_record()
        self.start_daq_job_processes(self._daq_jobs_to_load or [])
        self._events = FailedTaskListenerProcess(
            self.supervisor_id, self.redis_url, self.config.restart_backoff_max_seconds
        )
        self._events.start()
        self.warn_for_lack_of_daq_jobs()
        self._logger.info(
            "supervisor '%s' up: redis %s, run dir %s",
            self.supervisor_id,
            redact(self.redis_url),
            self.run_dir,
        )

    def _save_record(self) -> None:
        assert self.config is not None and self.registry is not None
        client = self.registry.redis
        session = os.environ.get(SESSION_ENV, "")
        try:
            previous = SupervisorRecord.load(client, self.supervisor_id).session
        except DAQError:
            previous = None
        if session and previous != session:
            self._logger.info("new session: starting from an empty registry")
            self.registry.forget_all()
        SupervisorRecord(
            supervisor_id=self.supervisor_id,
            info=self.config.info,
            xpub_url=self.supervisor_xpub_url,
            xsub_url=self.supervisor_xsub_url,
            run_dir=self.run_dir,
            plugins=list(self.config.plugins),
            config_dir=os.path.abspath(self._daq_job_config_path),
            hostname=this_host(),
            pid=os.getpid(),
            session=session or (previous or ""),
            started_at=time.time(),
            restart_backoff_max_seconds=self.config.restart_backoff_max_seconds,
            data_plane=self.data_plane_settings(),
        ).save(client)
        mark_alive(client, self.supervisor_id, STARTING_ALIVE_TTL_MS)

    def data_plane_settings(self) -> DataPlaneSettings:
        assert self.config is not None
        config = self.config
        return DataPlaneSettings(
            run_dir=self.run_dir,
            enabled=config.ring_enabled,
            ring_bytes=config.ring_buffer_size_mb * 2**20,
            slot_bytes=config.ring_buffer_slot_size_kb * 1024,
            block_timeout_s=config.ring_block_timeout_seconds,
            policy=config.ring_policy,
            consumer_timeout_s=config.ring_consumer_timeout_seconds,
        )

    def start_daq_job_processes(self, daq_jobs_to_load: list[DAQJobProcess]) -> None:
        """Register the given jobs, or (given none) every job of the config directory, and dispatch."""
        assert self.registry is not None
        holders = {r.unique_id: r.config_file for r in self.registry.all() if r.config_file}
        directory = read_config_dir(
            self._daq_job_config_path, holders, supervisor=self.config if self._config_given else None
        )
        specs = [p.to_spec() for p in daq_jobs_to_load] if daq_jobs_to_load else directory.jobs
        problems = directory.problems
        if daq_jobs_to_load:  # jobs given in code: only the problems that are not a job file's
            problems = [p for p in problems if problem_job_id(p) is None]
        sync_registry(self.registry, specs, problems)
        remember(self.registry, self._daq_job_config_path)
        remove_orphaned_rings(self.registry, self.run_dir)
        self.problems = problems
        self.restart_daq_jobs()
        self._refresh_views(specs)

    def _refresh_views(self, specs: list[JobSpec] | None = None) -> None:
        assert self.registry is not None and self.config is not None
        records = self.registry.all()
        self.daq_job_processes = [
            DAQJobProcess.from_record(r, self.config.info)
            for r in records
            if r.state not in (JobState.STOPPED, JobState.CRASHED)
        ]
        self.restart_schedules = [
            RestartDAQJobSchedule(
                DAQJobProcess.from_record(r, self.config.info), datetime.fromtimestamp(r.restart_at)
            )
            for r in records
            if r.restart_at
        ]

    # -- the loop ----------------------------------------------------------------
    def loop(self) -> None:
        """One reconcile pass: notice dead jobs, dispatch due restarts."""
        assert self.registry is not None and self.config is not None
        Reconciler(self.registry, self.app, this_host(), self.config.restart_backoff_max_seconds).tick()
        self._refresh_views()

    def run(self) -> None:
        """Drive the supervisor without beat: loop, routes, heartbeat and stats on their intervals."""
        from enrgdaq.control.ticker import SupervisorTicker

        ticker = SupervisorTicker(self.app, self.supervisor_id)
        due = {"routes": 0.0, "heartbeat": 0.0, "stats": 0.0}
        period = {
            "routes": DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS,
            "heartbeat": DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS,
            "stats": DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS,
        }
        try:
            while not self._is_stopped:
                now = time.monotonic()
                for name, at in due.items():
                    if now >= at:
                        getattr(ticker, name)()
                        due[name] = max(at + period[name], now)
                time.sleep(max(0.0, min(due.values()) - time.monotonic()))
        except KeyboardInterrupt:
            self._logger.warning("KeyboardInterrupt received, stopping")
            self.stop()
        finally:
            ticker.close()

    def restart_daq_jobs(self) -> None:
        """Dispatch every job whose (re)start is due."""
        assert self.registry is not None
        dispatch_due(self.app, self.registry)

    def get_restart_schedules(
        self, dead_processes: list[DAQJobProcess] | None = None
    ) -> list[RestartDAQJobSchedule]:
        """Pending restarts, as held in Redis (``dead_processes`` is accepted for compatibility)."""
        self._refresh_views()
        return list(self.restart_schedules)

    def get_status(self) -> SupervisorStatus:
        assert self.registry is not None and self.config is not None
        return collect_status(self.registry, self.config.info)

    def warn_for_lack_of_daq_jobs(self) -> None:
        assert self.registry is not None
        records = self.registry.all()
        if not any(r.is_store for r in records):
            self._logger.warning("No store job found, data will not be stored")

    # -- shutting down -------------------------------------------------------------
    def stop(self) -> None:
        """Stop every job (they will not be restarted) and this supervisor's components."""
        if self._is_stopped:
            return
        self._is_stopped = True
        if self.registry is not None:
            stop_all_jobs(self.registry, "supervisor stopped")
        self.close()

    def close(self) -> None:
        """Stop the proxy and the event listener; running jobs are left running."""
        if self._events is not None:
            self._events.stop()
            self._events = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None

    def _load_supervisor_config(self) -> SupervisorConfig:
        path = os.path.join(self._daq_job_config_path, SUPERVISOR_CONFIG_FILE_NAME)
        if not os.path.exists(path):
            self._logger.warning("No supervisor config file found at '%s', using default config", path)
        return load_supervisor_config(self._daq_job_config_path)
