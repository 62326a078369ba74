"""The job's last line in Flower (why it crashed) is sent even when it is said mid-send.

Against a real redis-server as Celery's event broker, read back with Celery's own event
receiver (what Flower uses). The broker is frozen with SIGSTOP while a rate line is being
sent, as a loaded machine does: the crash line said and the close asked for meanwhile must
still be the last event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from typing import Any

from celery import Celery

from enrgdaq.control.flower_progress import FlowerProgress
from tests.harness.redis_proc import RedisProcess
from tests.harness.waiting import wait_for


def received_results(
    app: Celery, seen: list[str], names: set[str | None], ready: threading.Event, until: str
) -> threading.Thread:
    """Celery's event receiver in a thread, collecting the progress lines until ``until``."""

    def listen() -> None:
        def on_event(event: dict[str, Any]) -> None:
            seen.append(event.get("result", ""))
            names.add(event.get("name"))
            if event.get("result") == until:
                receiver.should_stop = True

        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"task-Started": on_event})
            receiver.on_consume_ready = lambda *args, **kwargs: ready.set()
            with contextlib.suppress(TimeoutError):  # the assertions say what never came
                receiver.capture(limit=None, timeout=15, wakeup=False)

    return threading.Thread(target=listen, daemon=True)


def test_a_crash_said_while_a_rate_is_being_sent_is_the_last_line(redis_proc: RedisProcess) -> None:
    app = Celery("progress-test", broker=redis_proc.url)
    crash = "crashed: RuntimeError: digitizer stopped answering"
    seen: list[str] = []
    names: set[str | None] = set()
    ready = threading.Event()
    listener = received_results(app, seen, names, ready, until=crash)
    listener.start()
    assert ready.wait(10), "the event receiver did not subscribe"

    name = "DAQJobCAENDigitizer[digitizer]"
    progress = FlowerProgress(app, "task-1", socket.gethostname(), "digitizer", name)
    progress.start()
    progress.say("out 1.0 msg/s, 10 B/s")
    wait_for(lambda: progress.sent == 1, 10, "the first line sent")

    assert redis_proc.process is not None
    os.kill(redis_proc.process.pid, signal.SIGSTOP)
    try:
        progress.say("out 2.0 msg/s, 20 B/s")
        wait_for(lambda: progress._latest is None, 10, "the second line taken for sending")
        progress.say(crash)
        closer = threading.Thread(target=progress.close)
        closer.start()
        wait_for(progress._halt.is_set, 10, "close asked for")
    finally:
        os.kill(redis_proc.process.pid, signal.SIGCONT)
    closer.join(10)
    assert not progress.is_alive()
    listener.join(15)
    assert not listener.is_alive(), f"the crash line never arrived; seen {seen}"
    assert seen[-1] == crash
    assert progress.sent == 3
    # Each line names the task, so a Flower started after the job began still shows its name.
    assert names == {name}
