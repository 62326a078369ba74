"""``enrgdaq up``: the whole stack on one machine, as child processes.

It starts the same commands that ``docker-compose.yml`` runs: Redis (a
private one unless a URL is configured), the supervisor worker, beat, one
worker per queue the configs use, the REST API and status page (``enrgdaq
api``, on 127.0.0.1:8000 unless ``[cnc]`` says otherwise) and optionally
Flower. On Ctrl-C it stops the jobs first (so that stores flush), then the
processes, then Redis.

The API starts with beat, once the jobs run (it is not needed for the first
row on disk). If its port is taken, ``up`` says so and runs everything else.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from enrgdaq import settings
from enrgdaq.api.server import PORT_TAKEN_EXIT, port_free
from enrgdaq.api.settings import ApiSettings, api_enabled, api_settings
from enrgdaq.config.directory import problem_job_id, read_config_dir
from enrgdaq.config.loader import JobSpec, load_supervisor_config
from enrgdaq.constants import (
    CONFIG_DIR_ENV,
    REDIS_URL_ENV,
    RUN_DIR_ENV,
    SESSION_ENV,
    SUPERVISOR_QUEUE,
)
from enrgdaq.control.connection import connect, redact
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.shutdown import stop_all_jobs
from enrgdaq.errors import ConfigError, ControlPlaneError
from enrgdaq.local.lock import UpLock
from enrgdaq.local.processes import ManagedProcess
from enrgdaq.local.redis_server import RedisServer
from enrgdaq.local.run_files import remove_own_files
from enrgdaq.local.state_file import STATE_DIR, remove_state, write_state

logger = logging.getLogger(__name__)

JOB_STOP_TIMEOUT_SECONDS = 6.0
PROCESS_STOP_TIMEOUT_SECONDS = 5.0
BEAT_START_LATEST_SECONDS = 5.0


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "enrgdaq", *args]


def worker_command(queue: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    """What docker-compose.yml runs for one queue's worker (documentation and tests)."""
    return [
        "celery",
        "-A",
        "enrgdaq",
        "worker",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "-c",
        str(concurrency),
        "--without-mingle",
        "--without-gossip",
        "-l",
        loglevel,
    ]


def worker_argv(queue: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    """The same worker as :func:`worker_command`, started without the celery command line."""
    return [sys.executable, "-m", "enrgdaq.local.launch", "worker", queue, str(concurrency), loglevel]


def beat_argv(loglevel: str = "WARNING") -> list[str]:
    return [sys.executable, "-m", "enrgdaq.local.launch", "beat", loglevel]


def api_argv() -> list[str]:
    """``enrgdaq api``: it reads the config directory and Redis from the environment ``up`` gives."""
    return [sys.executable, "-m", "enrgdaq.cli.main", "api"]


FLOWER_TASKS_COLUMNS = "name,uuid,state,result,exception,started,worker"
"""Flower's tasks table with the ``result`` column, where a running job shows its rates and last
error (:mod:`enrgdaq.control.flower_progress`), and ``exception``, why a run crashed; Flower's
default shows neither."""


@dataclass
class UpOptions:
    config_dir: str
    flower: bool = False
    flower_port: int = 5555
    echo: Callable[[str], None] | None = print
    echo_logs: bool = True
    base_dir: str = "."
    extra_queues: list[str] = field(default_factory=list)


class Stack:
    def __init__(self, options: UpOptions) -> None:
        self.options = options
        self.config_dir = os.path.abspath(options.config_dir)
        self.config = load_supervisor_config(self.config_dir)
        self.specs: list[JobSpec] = []
        self.problems: list[ConfigError] = []
        self.state_dir = os.path.join(options.base_dir, STATE_DIR)
        self.log_dir = os.path.join(self.state_dir, "logs")
        self.redis: RedisServer | None = None
        self.redis_process: ManagedProcess | None = None
        self.processes: list[ManagedProcess] = []
        self.session = uuid.uuid4().hex
        self.run_dir = settings.run_dir(self.config)
        self.redis_url = settings.configured_redis_url(self.config) or ""
        self._stop_requested = False
        self.lock: UpLock | None = None
        self.api: ApiSettings | None = api_settings(self.config.cnc) if api_enabled(self.config.cnc) else None
        self.api_url: str | None = None

    # -- planning ----------------------------------------------------------------
    def queues(self) -> dict[str, int]:
        """Queue -> number of this node's jobs routed to it (a job pinned to another node with
        ``node = ...`` runs on that node's workers: docs/nodes.md)."""
        here = self.config.info.supervisor_id
        counts = Counter(
            spec.queue for spec in self.specs if (getattr(spec.config, "node", None) or here) == here
        )
        for queue in self.options.extra_queues:
            counts.setdefault(queue, 0)
        return dict(sorted(counts.items()))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [self.config_dir, os.getcwd(), env.get("PYTHONPATH", "")]
        env.update(
            {
                REDIS_URL_ENV: self.redis_url,
                CONFIG_DIR_ENV: self.config_dir,
                SESSION_ENV: self.session,
                RUN_DIR_ENV: self.run_dir,
                "PYTHONPATH": os.pathsep.join(p for p in paths if p),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _process(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        echo = self.options.echo if self.options.echo_logs else None
        return ManagedProcess(name, argv, env, os.path.join(self.log_dir, f"{name}.log"), echo)

    def core_processes(self) -> list[ManagedProcess]:
        """The supervisor and beat: they need no knowledge of the job files."""
        env = self.env()
        return [self._process("supervisor", worker_argv(SUPERVISOR_QUEUE, 1), env)]

    def beat_process(self) -> ManagedProcess:
        return self._process("beat", beat_argv(), self.env())

    def late_processes(self) -> list[ManagedProcess]:
        """Beat, and the API unless it is off or its port was taken: started once the jobs run."""
        procs = [self.beat_process()]
        if self.api_url is not None:
            procs.append(self._process("api", api_argv(), self.env()))
        return procs

    def check_api(self) -> None:
        """Refuse to start an API that would listen beyond loopback without a token (before
        anything starts; :class:`ConfigError`)."""
        if self.api is not None:
            self.api.check()

    def _give_up_on_a_taken_port(self, proc: ManagedProcess) -> None:
        """An API whose port was taken after all (a job serving on it) is not restarted in a loop."""
        if proc.name == "api" and proc.restart and proc.process and proc.process.poll() == PORT_TAKEN_EXIT:
            proc.restart = False
            self.say(
                f"REST API: port {self.api.port if self.api else '?'} was taken by another program; "
                "the API and status page stopped (everything else runs). Choose another port with "
                "[cnc] rest_api_port in supervisor.toml"
            )

    def _plan_api(self) -> None:
        if self.api is None:
            return
        if port_free(self.api):
            self.api_url = self.api.url()
            return
        self.say(
            f"REST API: port {self.api.port} on {self.api.host} is taken by another program; the API "
            "and status page are not started (everything else is). Choose another port with "
            "[cnc] rest_api_port in supervisor.toml"
        )

    def queue_processes(self) -> list[ManagedProcess]:
        """One worker per queue the jobs use, and Flower if asked for."""
        env = self.env()
        procs = []
        for queue, jobs in self.queues().items():
            # One pool slot per job plus one spare, so that a restart never waits for a new child.
            procs.append(self._process(f"w-{queue}", worker_argv(queue, jobs + 1), env))
        if self.options.flower:
            procs.append(
                self._process(
                    "flower",
                    celery_argv(
                        "flower",
                        "--address=127.0.0.1",
                        f"--port={self.options.flower_port}",
                        f"--tasks_columns={FLOWER_TASKS_COLUMNS}",
                    ),
                    env,
                )
            )
        return procs

    # -- running -------------------------------------------------------------------
    def check_redis(self) -> None:
        """A configured Redis must answer before anything starts (a private one is started later)."""
        if not self.redis_url:
            return
        try:
            connect(self.redis_url).ping()
        except redis.RedisError as exc:
            raise ControlPlaneError(
                f"cannot reach Redis at {redact(self.redis_url)} ({exc}): start it, correct "
                "ENRGDAQ_REDIS_URL / redis_url in supervisor.toml, or unset both to let `enrgdaq up` "
                "start a private one"
            ) from exc

    def say(self, text: str) -> None:
        if self.options.echo is not None:
            self.options.echo(text)

    def start(self) -> None:
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        if not self.redis_url:
            self.redis = RedisServer(os.path.join(self.state_dir, "redis"))
            self.redis_process = self._process("redis", self.redis.argv(), dict(os.environ))
            self.redis_process.start()
            self.redis.wait_ready()
            self.redis_url = self.redis.url
        # Start what does not depend on the job files first: parsing them overlaps its start-up.
        self.processes = self.core_processes()
        for proc in self.processes:
            proc.start()
        directory = read_config_dir(self.config_dir, supervisor=self.config)
        self.specs, self.problems = directory.jobs, directory.problems
        for problem in self.problems:
            started = " (job not started)" if problem_job_id(problem) is not None else ""
            self.say(f"config problem{started}: {problem}")
        for proc in self.queue_processes():
            proc.start()
            self.processes.append(proc)
        flower_url = f"http://127.0.0.1:{self.options.flower_port}" if self.options.flower else None
        self._plan_api()
        write_state(
            {
                "pid": os.getpid(),
                "redis_url": self.redis_url,
                "config_dir": self.config_dir,
                "supervisor_id": self.config.info.supervisor_id,
                "session": self.session,
                "flower_url": flower_url,
                "api_url": self.api_url,
                "started_at": time.time(),
            },
            self.options.base_dir,
        )
        self.say(self.summary(flower_url))

    def summary(self, flower_url: str | None) -> str:
        queues = ", ".join(f"{q} ({n} job{'s' if n != 1 else ''})" for q, n in self.queues().items())
        lines = [
            f"ENRGDAQ up: supervisor '{self.config.info.supervisor_id}', {len(self.specs)} job(s) "
            f"from {self.config_dir}",
            f"  redis: {redact(self.redis_url)}{' (embedded)' if self.redis else ''}",
            f"  workers: {queues or 'none'}",
            "  status: enrgdaq status    stop: Ctrl-C",
        ]
        if flower_url:
            lines.insert(3, f"  flower: {flower_url}")
        if self.api_url:
            lines.insert(3, f"  api: {self.api_url} (REST API and status page)")
        return "\n".join(lines)

    def take_lock(self) -> None:
        """Raise :class:`AlreadyRunningError` if an ``up`` runs on this directory, run dir or id.

        Called before anything starts, so that a refused ``up`` leaves the running one's
        processes, Redis and files alone. A lock whose holder died is taken over (and said so).
        """
        supervisor_id = self.config.info.supervisor_id
        lock = UpLock(
            state_dir=self.state_dir,
            run_dir=self.run_dir,
            run_dir_configured=self.run_dir != settings.default_run_dir(supervisor_id),
            redis_url=self.redis_url,
            supervisor_id=supervisor_id,
            config_dir=self.config_dir,
        )
        for gone in lock.acquire(connect(self.redis_url) if self.redis_url else None):
            self.say(f"taking over the lock of an enrgdaq up that is gone: {gone.describe()}")
        self.lock = lock

    def run_forever(self) -> int:
        if self.lock is None:
            self.take_lock()

        def on_signal(signum: int, _frame: object) -> None:
            # Only a plain store: a handler runs between two bytecodes of this thread, which may
            # hold the very lock an Event would take (a second Ctrl-C deadlocked on one).
            self._stop_requested = True

        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, on_signal)
        try:
            self.start()
            beat_due = time.monotonic() + BEAT_START_LATEST_SECONDS
            while not self._stop_requested:
                time.sleep(0.1)
                if self._stop_requested:
                    break  # not one more round (no beat started, no child restarted) before stopping
                if beat_due and (time.monotonic() > beat_due or self._jobs_started()):
                    # Nothing at start-up waits for beat or the API: they start once the jobs run,
                    # leaving the two cores to the workers' start-up first.
                    for late in self.late_processes():
                        late.start()
                        self.processes.append(late)
                    beat_due = 0.0
                for proc in self.processes:
                    self._give_up_on_a_taken_port(proc)
                    proc.check()
                if self.redis_process is not None:
                    self.redis_process.check()
        finally:
            self.shutdown()
            # Down and about to exit: a late Ctrl-C must not turn a clean exit into a traceback.
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_IGN)
        return 0

    def _jobs_started(self) -> bool:
        try:
            registry = JobRegistry(connect(self.redis_url), self.config.info.supervisor_id)
            records = registry.all()
        except Exception:
            return False
        return bool(records) and not any(
            r.state in (JobState.REGISTERED, JobState.WAITING, JobState.STARTING) for r in records
        )

    def shutdown(self) -> None:
        """Stop jobs (stores flush), then workers, beat and the supervisor, then Redis.

        Then the files it made go (rings, sockets, up.json) and the locks are released; the
        run directory goes only if this ``up`` created it (never one the user configured).
        """
        self.say("stopping: jobs first, then workers, then redis")
        self._stop_jobs()
        # The jobs have stopped: every process can be stopped at once (an idle prefork
        # worker needs about 2 s for its warm shutdown).
        for proc in self.processes:
            proc.restart = False
            proc.signal(signal.SIGTERM)
        for proc in self.processes:
            proc.terminate(PROCESS_STOP_TIMEOUT_SECONDS)
        if self.redis_process is not None:
            self._stop_redis()
        remove_state(self.options.base_dir)
        remove_own_files(self.run_dir)
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.say("stopped")

    def _stop_jobs(self) -> None:
        if not self.redis_url:
            return
        try:
            registry = JobRegistry(connect(self.redis_url), self.config.info.supervisor_id)
            if not stop_all_jobs(registry, "enrgdaq up is stopping", JOB_STOP_TIMEOUT_SECONDS):
                self.say("some jobs did not stop in time; their workers will end them")
        except Exception as exc:
            self.say(f"could not ask the jobs to stop ({exc}); stopping the workers")

    def _stop_redis(self) -> None:
        assert self.redis_process is not None
        try:
            connect(self.redis_url).shutdown()
        except Exception:
            self.redis_process.signal(signal.SIGTERM)
        self.redis_process.restart = False
        self.redis_process.terminate(PROCESS_STOP_TIMEOUT_SECONDS)
