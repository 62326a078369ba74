"""Celery's ``task-failed`` event as the fast path of crash detection.

When a pool child is killed, the worker's main process publishes
``task-failed`` (``WorkerLostError``) in tens of milliseconds in most cases,
well before the lease runs out. This thread listens for it in the
supervisor's main process. It is only a fast path: some deaths send no event
at all (a whole worker killed), and the lease covers those.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from enrgdaq.constants import DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS
from enrgdaq.control.lifecycle import Outcome
from enrgdaq.control.orphans import die_with_parent
from enrgdaq.control.registry import JobRegistry

logger = logging.getLogger(__name__)


class FailedTaskListener(threading.Thread):
    def __init__(self, app: Any, registry: JobRegistry, backoff_max: float) -> None:
        super().__init__(name="enrgdaq-task-events", daemon=True)
        self.app = app
        self.registry = registry
        self.backoff_max = backoff_max
        # A plain flag, not an Event: stop_soon runs in a signal handler, which must not take
        # a lock the interrupted code may hold (Event.set and Event.wait both take one).
        self._stopped = False
        self._receiver: Any = None

    def run(self) -> None:
        while not self._stopped:
            try:
                with self.app.connection_for_read() as connection:
                    self._receiver = self.app.events.Receiver(
                        connection, handlers={"task-failed": self.on_task_failed}
                    )
                    # Returns only when should_stop is set (checked every second).
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception:
                if self._stopped:
                    return
                logger.warning("task event listener lost its connection; reconnecting", exc_info=True)
                time.sleep(1.0)

    def on_task_failed(self, event: dict[str, Any]) -> None:
        task_id = event.get("uuid")
        if not task_id:
            return
        for record in self.registry.all():
            if record.task_id != task_id or not record.state.is_live:
                continue
            why = str(event.get("exception") or "task failed")
            traceback_text = str(event.get("traceback") or "")
            state = self.registry.end(
                record.unique_id,
                task_id,
                Outcome.CRASHED,
                f"{why}\n{traceback_text}".strip(),
                at=record.last_heartbeat,
                backoff_max=self.backoff_max,
                alive_seconds=DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS,
            )
            if state != "ignored":
                logger.warning("[%s] task failed (%s) -> %s", record.unique_id, why, state)

    def stop_soon(self) -> None:
        """Ask ``run`` to return (within a second); safe from a signal handler."""
        self._stopped = True
        if self._receiver is not None:
            self._receiver.should_stop = True

    def stop(self) -> None:
        self.stop_soon()
        if self.is_alive():
            self.join(3.0)


class FailedTaskListenerProcess:
    """Runs the listener in its own process.

    A thread would hold kombu and redis-py connection locks in the supervisor
    worker's main process; a pool child forked while one is held deadlocks in
    redis-py's after-fork reset (seen in the tests). The process dies with its
    parent (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, supervisor_id: str, redis_url: str, backoff_max: float) -> None:
        self.argv = [sys.executable, "-m", "enrgdaq.control.events", supervisor_id, repr(backoff_max)]
        self.env = {**os.environ, "ENRGDAQ_REDIS_URL": redis_url}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def main(argv: list[str]) -> int:
    """``python -m enrgdaq.control.events SUPERVISOR_ID BACKOFF_MAX``; ends on SIGTERM."""
    from enrgdaq.celery import app
    from enrgdaq.control.connection import connect

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/task-events] %(message)s")
    supervisor_id, backoff_max = argv[0], float(argv[1])
    listener = FailedTaskListener(app, JobRegistry(connect(app.conf.broker_url), supervisor_id), backoff_max)

    def on_term(_signum: int, _frame: object) -> None:
        listener.stop_soon()

    signal.signal(signal.SIGTERM, on_term)
    listener.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
