"""Live progress of a running DAQ job in Flower: rates and the last error, about once a second.

Flower knows a task only from Celery's task events. A DAQ job's task sends ``task-started``
once and then runs for days, so without more events Flower would show nothing but
"STARTED". The lease keeper hands this module the job's rates every second; a thread of its
own (a slow broker must never delay the lease renewal) sends them as a task event whose
``result`` field Flower shows on the task page and in the tasks table (column ``result``).

The event's type is ``task-Started``: Celery's event state (which Flower uses) files an
unknown ``task-<x>`` event under the custom state ``<X>`` upper-cased, so this one keeps the
task in state STARTED, where a ``task-progress`` event would make it "PROGRESS". That matters:
Flower offers its Terminate button (a person's stop, see :mod:`enrgdaq.control.signals`) only
for tasks in state STARTED. Unlike a real ``task-started`` it does not move the task's start
time or Flower's prefetch metrics. It carries the task's shown name (``DAQJobType[id]``),
so a Flower started or restarted after the job's ``task-received`` still names the task.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

PROGRESS_EVENT = "task-Started"
RECONNECT_SECONDS = 5.0


def human_rate(value: float, unit: str) -> str:
    """``1534.2, "B/s"`` -> ``1.5 kB/s``; messages keep one decimal."""
    for prefix in ("", "k", "M", "G"):
        if abs(value) < 1000 or prefix == "G":
            return f"{value:.1f} {prefix}{unit}" if prefix or unit != "B/s" else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} {unit}"  # pragma: no cover - the loop always returns


def progress_text(rates: dict[str, float], last_error: str | None) -> str:
    """One short line for Flower's ``result``: what goes out and what comes in (a producer shows
    only ``out``, a store only ``in``), and the last error if there is one."""
    out_rate, in_rate = rates.get("out_per_s", 0.0), rates.get("in_per_s", 0.0)
    parts = []
    if out_rate > 0 or in_rate <= 0:
        parts.append(f"out {out_rate:.1f} msg/s, {human_rate(rates.get('out_bytes_per_s', 0.0), 'B/s')}")
    if in_rate > 0:
        parts.append(f"in {in_rate:.1f} msg/s, {human_rate(rates.get('in_bytes_per_s', 0.0), 'B/s')}")
    if last_error and last_error.strip():
        parts.append(f"last error: {last_error.strip().splitlines()[-1][:200]}")
    return " | ".join(parts)


class FlowerProgress(threading.Thread):
    """Sends the latest rates of one job's task to Flower, never more than once a second."""

    def __init__(
        self, app: Any, task_id: str, hostname: str | None, unique_id: str, task_name: str | None = None
    ) -> None:
        super().__init__(name=f"flower-{unique_id}", daemon=True)
        self.app = app
        self.task_id = task_id
        self.hostname = hostname
        self.unique_id = unique_id
        self.task_name = task_name
        self.sent = 0
        self._latest: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._dispatcher: Any = None
        self._connection: Any = None

    def update(self, rates: dict[str, float], last_error: str | None) -> None:
        """Called by the lease keeper: never blocks (the sending happens on this thread)."""
        self.say(progress_text(rates, last_error))

    def say(self, text: str) -> None:
        """Show ``text`` as the task's result (the last one before :meth:`close` is still sent)."""
        with self._lock:
            self._latest = text
        self._wake.set()

    def _take(self) -> str | None:
        with self._lock:
            text, self._latest = self._latest, None
        return text

    def run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            text = self._take()
            if text is not None:
                try:
                    self._send(text)
                    self.sent += 1
                except Exception:
                    logger.debug("[%s] could not send progress to Flower", self.unique_id, exc_info=True)
                    self._disconnect()
                    if self._halt.wait(RECONNECT_SECONDS):
                        break
            # A line said while the last one was being sent (a crash said just before close)
            # is sent before the thread ends: it is what Flower should show last.
            if self._halt.is_set() and self._latest is None:
                break
        self._disconnect()

    def _send(self, text: str) -> None:
        if self._dispatcher is None:
            self._connection = self.app.connection_for_write()
            self._dispatcher = self.app.events.Dispatcher(
                self._connection, hostname=self.hostname, enabled=True
            )
        named = {"name": self.task_name} if self.task_name else {}
        self._dispatcher.send(PROGRESS_EVENT, uuid=self.task_id, result=text, **named)

    def _disconnect(self) -> None:
        dispatcher, connection, self._dispatcher, self._connection = (
            self._dispatcher,
            self._connection,
            None,
            None,
        )
        for closing in (dispatcher, connection):
            try:
                if closing is not None:
                    closing.close()
            except Exception:
                logger.debug("[%s] closing the event connection failed", self.unique_id, exc_info=True)

    def close(self) -> None:
        """Send what was said last (within 2 s), then end the thread and its connection."""
        self._halt.set()
        self._wake.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(2.0)
