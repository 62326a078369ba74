"""A store's failed writes: when to try again, and what ``enrgdaq status`` shows meanwhile.

A write that raises ``OSError`` (a full disk, a directory that is gone) or
:class:`~enrgdaq.errors.StoreWriteError` (a store's own word for "not now",
e.g. its database is down) may succeed later: the store keeps the data (in
the ring, so the producer waits once the ring is full) and tries again after
``RETRY_FIRST_SECONDS``, doubling each time up to ``RETRY_MAX_SECONDS``. Any
other exception is a bug in the store or a message it cannot take: retrying
would not help, so it is counted and logged as before.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.stats import JobCounters, worth_a_line
from enrgdaq.errors import StoreWriteError

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (OSError, StoreWriteError)
"""Errors of a write that mean "keep the data, try again later"."""
RETRY_FIRST_SECONDS = 0.25
"""The first retry comes this long after a failed write (a brief hiccup costs little)."""
RETRY_MAX_SECONDS = 10.0
"""Retries double up to this: a store down for hours tries every 10 s (a few log lines, not a flood)
and writes again at most 10 s after its disk or database is back."""
ERROR_TEXT_MAX = 300

_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")
_KEY_SECRET = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key)=[^\s,;&]+")


def error_text(exc: BaseException) -> str:
    """One line for status and stats: type and message, credentials of URLs and ``password=``
    pairs masked (a database store's error may carry its connection string), cut to 300 chars."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_SECRET.sub(r"\1=***", text)
    return text if len(text) <= ERROR_TEXT_MAX else text[: ERROR_TEXT_MAX - 3] + "..."


class WriteRetry:
    """The write state of one store: failing or not, the next retry, and the counters status reads
    (``write_errors``, ``write_failing``, ``last_error`` in :class:`JobCounters`)."""

    def __init__(self, counters: JobCounters, logger: logging.LoggerAdapter) -> None:  # type: ignore[type-arg,unused-ignore]
        self.counters = counters
        self._logger = logger
        self.delay = 0.0
        self.retry_at = 0.0
        self.failing_since: float | None = None
        self._attempts = 0  # failed attempts since the last write that went through

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def seconds_left(self) -> float:
        """Until the next retry (0 or less: due now)."""
        return self.retry_at - time.monotonic()

    def failed(self, exc: BaseException) -> None:
        """A write failed: the data stays; the next try after the backoff."""
        now = time.monotonic()
        first = self.failing_since is None
        if first:
            self.failing_since = now
        self.delay = RETRY_FIRST_SECONDS if first else min(self.delay * 2, RETRY_MAX_SECONDS)
        self.retry_at = now + self.delay
        self._attempts += 1
        text = error_text(exc)
        counters = self.counters
        counters.write_errors += 1
        counters.write_failing = 1
        counters.last_error = text
        if first:
            self._logger.error(
                "cannot write: %s; its data stays in the ring (the producers wait), retrying in %.2f s",
                text,
                self.delay,
            )
        elif worth_a_line(self._attempts - 1, self._attempts):
            self._logger.error(
                "still cannot write after %d attempts over %.0f s: %s; next try in %.1f s",
                self._attempts,
                now - (self.failing_since or now),
                text,
                self.delay,
            )

    def succeeded(self) -> None:
        """A write went through: back to normal (a no-op when nothing had failed)."""
        if self.failing_since is None:
            return
        self._logger.warning(
            "writes again after %.1f s and %d failed attempt(s); nothing was lost",
            time.monotonic() - self.failing_since,
            self._attempts,
        )
        self.failing_since = None
        self.delay = 0.0
        self._attempts = 0
        self.counters.write_failing = 0


def keep_in_ring(messages: Iterable[DAQJobMessage]) -> tuple[int, int]:
    """At a stop with data not written: let ``messages`` go without giving their ring slots back,
    so that the store's next run reads them again. Returns (kept in the ring, lost: inline
    messages and copies, which hold no slot).

    A message read from a ring holds a guard that releases its slot when it dies; a guard
    released as sequence -1 (behind the ring's release point, which the reader ignores) gives
    nothing back, so the consumer's cursor stays before the first payload not written.
    """
    kept = lost = 0
    for message in messages:
        guard = getattr(message, "__dict__", {}).get("_ring_guard")
        if guard is None:
            lost += 1
        else:
            guard.seq = -1
            kept += 1
    return kept, lost
