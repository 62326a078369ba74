"""Job and node logs in Redis: the last lines of every job, readable from anywhere.

A job runs in a pool child on any machine; its log lines are wanted by ``enrgdaq logs``
and the REST API on another. :class:`RedisLogHandler` appends each record to a capped
Redis stream per source (a job's unique id, or :data:`~enrgdaq.control.keys.NODE_LOG`
for the supervisor worker's own processes); :class:`LogStore` reads them back.

Logging must never slow down or break a job: records go into a bounded in-memory queue
that a thread drains into Redis in batches. When Redis is slow or down the queue fills
and further records are dropped and counted (the count is logged once Redis answers
again). Secrets (passwords, tokens, webhook URLs, URL credentials) are masked before a
line leaves the process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

import msgspec
import redis

from enrgdaq.control.keys import Keys
from enrgdaq.control.masking import mask_text

STREAM_MAXLEN = 5000
"""Lines kept per source (approximately: Redis trims whole stream nodes)."""
QUEUE_SIZE = 10_000
"""Lines held in memory while Redis is slow; more are dropped and counted."""
BATCH_SIZE = 200
RETRY_SECONDS = 1.0
FOLLOW_BLOCK_MAX_MS = 4000
"""A follow() blocks at most this long: the control plane's clients time out after 5 s."""

_FORMATTER = logging.Formatter()


class LogLine(msgspec.Struct):
    """One log line as ``enrgdaq logs`` and the REST API show it."""

    id: str
    """The Redis stream entry id (``<ms>-<n>``): pass it to :meth:`LogStore.follow` as ``after``."""
    time: float
    level: str
    source: str
    logger: str
    message: str


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _line(source: str, entry_id: Any, fields: dict[Any, Any]) -> LogLine:
    data = {_text(k): _text(v) for k, v in fields.items()}
    try:
        when = float(data.get("time", "0"))
    except ValueError:
        when = 0.0
    return LogLine(
        id=_text(entry_id),
        time=when,
        level=data.get("level", ""),
        source=source,
        logger=data.get("logger", ""),
        message=data.get("message", ""),
    )


class LogStore:
    """Reads the log streams of one supervisor: a job's (its unique id) or the node's (``_node``)."""

    def __init__(self, client: redis.Redis, supervisor_id: str) -> None:
        self.redis = client
        self.keys = Keys(supervisor_id)

    def tail(self, source: str, lines: int = 100) -> list[LogLine]:
        """The last ``lines`` lines of ``source``, oldest first (empty if it never logged)."""
        if lines <= 0:
            return []
        entries = self.redis.xrevrange(self.keys.logs(source), "+", "-", count=lines)
        return [_line(source, eid, fields) for eid, fields in reversed(entries)]  # type: ignore[arg-type]

    def follow(self, source: str, after: str = "$", block_ms: int = 1000) -> list[LogLine]:
        """Lines of ``source`` newer than the entry id ``after``, waiting up to ``block_ms`` for one.

        Pass the ``id`` of the last line seen (from :meth:`tail` or a previous call) to read
        without gaps; ``"$"`` means "from now on". Returns an empty list on a timeout.
        """
        block = max(1, min(int(block_ms), FOLLOW_BLOCK_MAX_MS))
        answer: Any = self.redis.xread({self.keys.logs(source): after}, block=block, count=1000)
        lines: list[LogLine] = []
        for _key, entries in answer or []:
            lines += [_line(source, eid, fields) for eid, fields in entries]
        return lines

    def sources(self) -> list[str]:
        """Every source that has a log stream: job unique ids and ``_node``."""
        prefix = self.keys.logs("")
        found = {_text(k)[len(prefix) :] for k in self.redis.scan_iter(match=prefix + "*", count=500)}
        return sorted(found)


class RedisLogHandler(logging.Handler):
    """Appends records to the log stream of one source without ever blocking the caller.

    ``emit`` formats, masks and queues; a daemon thread writes batches with
    ``XADD MAXLEN ~``. After a fork the child gets a fresh queue and thread on its first
    record (the parent's thread does not survive a fork).
    """

    def __init__(self, client: redis.Redis, supervisor_id: str, source: str, queue_size: int = QUEUE_SIZE):
        super().__init__()
        self.client = client
        self.source = source
        self.key = Keys(supervisor_id).logs(source)
        self.queue_size = queue_size
        self.dropped = 0
        """Records dropped because the queue was full (Redis slow or down) or Redis refused them."""
        self._reported_dropped = 0
        self._start_thread()

    def _start_thread(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[dict[str, str]] = queue.Queue(self.queue_size)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._drain, name=f"logs-{self.source}", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if self._pid != os.getpid():
            self._start_thread()
        if record.thread == self._thread.ident:
            return  # the writer's own records (the Redis client's) would feed back into it
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + _FORMATTER.formatException(record.exc_info)
            self._queue.put_nowait(
                {
                    "time": repr(record.created),
                    "level": record.levelname,
                    "logger": record.name,
                    "message": mask_text(message),
                }
            )
        except queue.Full:
            self.dropped += 1
        except Exception:
            self.handleError(record)

    def _batch(self) -> list[dict[str, str]]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_SIZE:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self) -> None:
        while True:
            batch = self._batch()
            if not batch:
                if self._halt.is_set():
                    return
                continue
            taken = len(batch)
            if self.dropped > self._reported_dropped:
                batch.insert(0, self._dropped_line())
            try:
                pipe = self.client.pipeline(transaction=False)
                for fields in batch:
                    pipe.xadd(self.key, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                pipe.execute()
                failed = False
            except redis.RedisError:
                self.dropped += taken
                failed = True
            for _ in range(taken):
                self._queue.task_done()
            if failed and self._halt.wait(RETRY_SECONDS):
                return

    def _dropped_line(self) -> dict[str, str]:
        count, self._reported_dropped = self.dropped - self._reported_dropped, self.dropped
        return {
            "time": repr(time.time()),
            "level": "WARNING",
            "logger": __name__,
            "message": f"{count} log line(s) dropped: Redis was slow or unreachable",
        }

    def flush(self, timeout: float = 0.5) -> None:
        """Wait up to ``timeout`` for the queued lines to be written (never longer)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline and self._thread.is_alive():
            self._halt.wait(0.01)

    def close(self) -> None:
        """Write what is queued (briefly), then stop the writer thread."""
        if self._pid == os.getpid():
            self.flush()
            self._halt.set()
            self._thread.join(1.0)
        super().close()


def install(
    client: redis.Redis, supervisor_id: str, source: str, level: int = logging.INFO
) -> RedisLogHandler:
    """Add a handler for ``source`` to the root logger: every record of this process goes there."""
    handler = RedisLogHandler(client, supervisor_id, source)
    handler.setLevel(level)
    logging.getLogger().addHandler(handler)
    return handler


def uninstall(handler: RedisLogHandler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()


def installed(source: str) -> RedisLogHandler | None:
    """This process's handler for ``source`` on the root logger, if any (installs are idempotent)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RedisLogHandler) and handler.source == source:
            return handler
    return None
