"""Celery's ``task-failed`` event as the fast path of crash detection.

When a pool child is killed, the worker's main process publishes
``task-failed`` (``WorkerLostError``) in tens of milliseconds in most cases,
well before the lease runs out. This thread listens for it in the
supervisor's main process. It is only a fast path: some deaths send no event
at all (a whole worker killed), and the lease covers those.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from enrgdaq.constants import DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS
from enrgdaq.control.lifecycle import Outcome
from enrgdaq.control.registry import JobRegistry

logger = logging.getLogger(__name__)


class FailedTaskListener(threading.Thread):
    def __init__(self, app: Any, registry: JobRegistry, backoff_max: float) -> None:
        super().__init__(name="enrgdaq-task-events", daemon=True)
        self.app = app
        self.registry = registry
        self.backoff_max = backoff_max
        self._stopped = threading.Event()
        self._receiver: Any = None

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                with self.app.connection_for_read() as connection:
                    self._receiver = self.app.events.Receiver(
                        connection, handlers={"task-failed": self.on_task_failed}
                    )
                    # Returns only when should_stop is set (checked every second).
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception:
                if self._stopped.is_set():
                    return
                logger.warning("task event listener lost its connection; reconnecting", exc_info=True)
                self._stopped.wait(1.0)

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

    def stop(self) -> None:
        self._stopped.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self.is_alive():
            self.join(3.0)
