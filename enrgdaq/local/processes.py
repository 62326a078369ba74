"""Child processes of ``enrgdaq up``: started in their own session, logged with a prefix, restarted.

Children get their own process group, so that Ctrl-C reaches only ``enrgdaq
up``, which then stops them in order. They also die with it if it is killed
(``PR_SET_PDEATHSIG``), so that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

from enrgdaq.control.orphans import die_with_parent

logger = logging.getLogger(__name__)

MAX_RESTART_DELAY_SECONDS = 30.0


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: str,
        echo: Callable[[str], None] | None = None,
        restart: bool = True,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.echo = echo
        self.restart = restart
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._next_start = 0.0
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._reader = threading.Thread(
            target=self._pump, args=(self.process.stdout,), name=f"log-{self.name}", daemon=True
        )
        self._reader.start()

    def _pump(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with open(self.log_path, "ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                if self.echo is not None:
                    self.echo(f"{self.name:>10} | {raw.decode(errors='replace').rstrip()}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        """Restart the process if it died (with a growing delay)."""
        if not self.restart or self.process is None or self.alive():
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            delay = min(2.0**self.restarts, MAX_RESTART_DELAY_SECONDS)
            self._next_start = now + delay
            logger.warning(
                "%s exited with %s; restarting in %.0f s", self.name, self.process.returncode, delay
            )
            return
        if now >= self._next_start:
            self._next_start = 0.0
            self.restarts += 1
            self.start()

    def signal(self, sig: int) -> None:
        if self.alive() and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if self._reader is not None:
            self._reader.join(1.0)
        return True

    def terminate(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL of the whole process group after ``timeout``."""
        self.restart = False
        self.signal(signal.SIGTERM)
        if not self.wait(timeout) and self.process is not None:
            logger.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.wait(2.0)
