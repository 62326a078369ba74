"""Stopping every job of a supervisor in the order that loses nothing.

Producers stop first; stores stop after them, so that they receive and
flush everything the producers handed over before they go.
"""

from __future__ import annotations

import logging
import time

from enrgdaq.control.registry import JobRecord, JobRegistry

logger = logging.getLogger(__name__)


def _wait_stopped(registry: JobRegistry, unique_ids: set[str], deadline: float) -> bool:
    while True:
        live = [r for r in registry.all() if r.unique_id in unique_ids and r.state.is_live]
        if not live:
            return True
        if time.monotonic() >= deadline:
            logger.warning("still running after the stop request: %s", ", ".join(r.unique_id for r in live))
            return False
        time.sleep(0.05)


def stop_all_jobs(registry: JobRegistry, reason: str, timeout: float = 6.0) -> bool:
    """Ask producers, then stores, to stop for good; True if all stopped within ``timeout``."""
    deadline = time.monotonic() + timeout
    records: list[JobRecord] = registry.all()
    producers = {r.unique_id for r in records if not r.is_store}
    stores = {r.unique_id for r in records if r.is_store}
    for uid in sorted(producers):
        registry.request_stop(uid, reason)
    done = _wait_stopped(registry, producers, deadline - timeout / 3)
    for uid in sorted(stores):
        registry.request_stop(uid, reason)
    return _wait_stopped(registry, stores, deadline) and done
