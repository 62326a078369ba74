"""Nodes of one system on one shared Redis, each a separate process group (own supervisor id,
config and run directory, supervisor, beat and workers), as a person starts them on machines."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator

import psutil

from tests.harness.redis_proc import RedisProcess
from tests.harness.system import DAQSystem


class Node(DAQSystem):
    """One node of the test: a config directory and its processes, on a Redis it shares."""

    def __init__(self, base: str, supervisor_id: str, redis: RedisProcess) -> None:
        super().__init__(base, redis=redis, supervisor_id=supervisor_id)

    def life_job(self, name: str, extra: str = "") -> None:
        self.write(
            f"{name}.toml",
            f"""
            daq_job_type = "DAQJobLifeLog"
            log_dir = "{os.path.join(self.base, "life-" + name)}"
            {extra}
        """,
        )

    def start(self, concurrency: int) -> None:
        """Supervisor, beat and one ``-Q default`` worker; the supervisor first (it registers
        the node's proxy and ring directory that the jobs use)."""
        self.start_supervisor().wait_ready()
        self.start_worker("default", concurrency=concurrency).wait_ready()
        self.start_beat()

    def worker(self) -> psutil.Process:
        return psutil.Process(next(p for p in self.procs if p.name == "w-default").pid)

    def kill_9(self) -> None:
        """kill -9 of every process of the node (each one's whole process group)."""
        for proc in self.procs:
            if proc.alive():
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.process is not None:
                proc.process.wait(10)

    def restart(self) -> None:
        for proc in self.procs:
            proc.start()
        for proc in self.procs:
            if proc.name != "beat":
                proc.wait_ready()

    def close(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            proc.stop(timeout=5 if proc.name == "beat" else 20)
        if self._registry is not None:
            self._registry.redis.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@contextlib.contextmanager
def two_nodes(base: str, first: str, second: str) -> Iterator[tuple[Node, Node]]:
    """Nodes ``first`` and ``second`` on a new Redis; everything stopped and checked gone after."""
    redis = RedisProcess(os.path.join(base, "redis"))
    redis.start()
    a = Node(os.path.join(base, "a"), first, redis)
    b = Node(os.path.join(base, "b"), second, redis)
    try:
        yield a, b
    finally:
        b.close()
        a.close()
        redis.stop()
        for node in (a, b):
            assert not os.path.exists(node.run_dir), f"run dir left behind: {node.run_dir}"
