"""A whole ENRGDAQ system under test: config dir, Redis, supervisor, beat, workers."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import textwrap
import time

from enrgdaq.control.connection import connect
from enrgdaq.control.registry import JobRecord, JobRegistry
from tests.harness.celery_proc import CeleryProcess, base_env
from tests.harness.redis_proc import RedisProcess
from tests.harness.waiting import wait_for

SUPERVISOR_ID = "sut"


class DAQSystem:
    def __init__(
        self, base: str, redis: RedisProcess | None = None, supervisor_id: str = SUPERVISOR_ID
    ) -> None:
        """``redis``: one shared with other systems (several nodes); started here when None."""
        self.base = base
        self.config_dir = os.path.join(base, "configs")
        self.out_dir = os.path.join(base, "out")
        self.log_dir = os.path.join(base, "logs")
        for d in (self.config_dir, self.out_dir, self.log_dir):
            os.makedirs(d, exist_ok=True)
        # Short: ipc socket paths are limited to about 100 characters.
        self.run_dir = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
        if redis is None:
            redis = RedisProcess(os.path.join(base, "redis"))
            redis.start()
        self.redis = redis
        self.procs: list[CeleryProcess] = []
        self.supervisor_id = supervisor_id
        self.write_supervisor()
        self._registry: JobRegistry | None = None

    # -- configs -----------------------------------------------------------------
    def write_supervisor(self, extra: str = "") -> None:
        self.write(
            "supervisor.toml",
            f"""
            plugins = ["enrgdaq_testjobs"]
            {extra}
            [info]
            supervisor_id = "{self.supervisor_id}"
        """,
        )

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.config_dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip())
        return path

    def csv_store(self, name: str = "store_csv", queue: str | None = None) -> None:
        queue_line = f'queue = "{queue}"' if queue else ""
        self.write(
            f"{name}.toml",
            f"""
            daq_job_type = "DAQJobStoreCSV"
            out_dir = "{self.out_dir}/"
            {queue_line}
        """,
        )

    # -- processes ----------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return base_env(self.redis.url, self.config_dir, self.run_dir)

    def celery(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> CeleryProcess:
        proc = CeleryProcess(name, list(args), {**self.env, **(extra_env or {})}, self.log_dir)
        self.procs.append(proc)
        return proc.start()

    def start_supervisor(self, name: str = "supervisor") -> CeleryProcess:
        return self.celery(
            name,
            "worker",
            "-Q",
            "supervisor",
            "-n",
            f"{name}-{id(self)}@%h",
            "-c",
            "1",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        )

    def start_beat(self) -> CeleryProcess:
        return self.celery("beat", "beat", "-l", "INFO")

    def start_worker(
        self,
        queue: str,
        concurrency: int = 2,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> CeleryProcess:
        name = name or f"w-{queue}"
        return self.celery(
            name,
            "worker",
            "-Q",
            queue,
            "-n",
            f"{name}-{len(self.procs)}-{id(self)}@%h",
            "-c",
            str(concurrency),
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
            extra_env=extra_env,
        )

    def start_all(self, queues: tuple[str, ...] = ("default", "store")) -> None:
        """Supervisor, beat and one worker per queue, all ready."""
        procs = [self.start_supervisor(), self.start_beat()]
        procs += [self.start_worker(q) for q in queues]
        for proc in procs:
            if proc.name != "beat":
                proc.wait_ready()

    # -- the registry ----------------------------------------------------------------
    @property
    def registry(self) -> JobRegistry:
        if self._registry is None:
            self._registry = JobRegistry(connect(self.redis.url), self.supervisor_id)
        return self._registry

    def job(self, unique_id: str) -> JobRecord:
        record = self.registry.get(unique_id)
        assert record is not None, f"no job {unique_id!r} in the registry"
        return record

    def wait_state(self, unique_id: str, state: str, timeout: float = 20) -> JobRecord:
        def reached() -> JobRecord | None:
            record = self.registry.get(unique_id)
            return record if record is not None and record.state.value == state else None

        return wait_for(reached, timeout, f"job {unique_id} to be {state} (logs in {self.log_dir})")

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()[-4000:]}" for p in self.procs)

    # -- teardown ----------------------------------------------------------------------
    def close(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            # Beat keeps no state (in-memory schedule); a SIGTERM that lands while it publishes a
            # tick can be swallowed, so it gets a short grace before SIGKILL.
            proc.stop(timeout=5 if proc.name == "beat" else 20)
        self.redis.stop()
        if self._registry is not None:
            self._registry.redis.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def csv_rows(directory: str) -> list[list[str]]:
    """Rows (without headers) of every CSV file below ``directory``."""
    import csv

    rows: list[list[str]] = []
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            if name.endswith(".csv"):
                with open(os.path.join(root, name), newline="") as f:
                    rows.extend(r for r in csv.reader(f) if r and not r[0].isalpha())
    return rows


def monotonic_ms() -> float:
    return time.monotonic() * 1000
