"""``celery -A enrgdaq worker|beat`` as real subprocesses, with readiness and clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from tests.harness.waiting import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(REPO, "tests", "plugins")


class CeleryProcess:
    """One celery process; its output goes to a log file that the test can read."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: str) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "celery", "-A", "enrgdaq", *args]
        self.env = env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self.terminated = False

    def start(self) -> CeleryProcess:
        self.terminated = False
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        log.close()
        return self

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout: float = 30) -> CeleryProcess:
        wait_for(lambda: " ready." in self.log() or not self.alive(), timeout, f"{self.name} to be ready")
        assert self.alive(), f"{self.name} exited:\n{self.log()[-3000:]}"
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)
            self.terminated = self.terminated or sig == signal.SIGTERM

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def dump_stacks(self) -> None:
        """Append the Python stacks of this process and its children to its log (needs py-spy)."""
        import shutil

        import psutil

        spy = shutil.which("py-spy")
        if spy is None or self.process is None:
            return
        procs = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        with open(self.log_path, "a") as log:
            for proc in procs:
                out = subprocess.run(
                    [spy, "dump", "--pid", str(proc.pid)], capture_output=True, text=True, check=False
                )
                log.write(
                    f"\n===== stacks of pid {proc.pid} (did not stop in time)\n{out.stdout}{out.stderr}"
                )

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (warm shutdown); SIGKILL of the whole group if it does not exit."""
        if self.process is None:
            return
        if self.alive():
            if not self.terminated:  # a second SIGTERM would turn a warm shutdown cold
                self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                self.dump_stacks()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout / 2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


def base_env(redis_url: str, config_dir: str, run_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ENRGDAQ_REDIS_URL": redis_url,
            "ENRGDAQ_CONFIG_DIR": config_dir,
            "ENRGDAQ_RUN_DIR": run_dir,
            "PYTHONPATH": os.pathsep.join([REPO, PLUGINS, env.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("ENRGDAQ_SESSION", None)
    return env
