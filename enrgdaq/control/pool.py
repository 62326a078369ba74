"""The prefork pool, with a faster check for pool children that died.

Celery's prefork pool notices most dead children at once, but a race leaves
about a third of them to a maintenance timer that runs every 5 s (measured,
see ``celery-measured.md``). A killed DAQ job's slot then stays empty for up
to 5 s. Running that timer every 0.25 s bounds it.
"""

from __future__ import annotations

from typing import Any

from celery.concurrency import asynpool, prefork

MAINTAIN_INTERVAL_SECONDS = 0.25


class FastMaintainAsynPool(asynpool.AsynPool):
    @property
    def timers(self) -> dict[Any, float]:
        return {self.maintain_pool: MAINTAIN_INTERVAL_SECONDS}


class TaskPool(prefork.TaskPool):
    Pool = FastMaintainAsynPool
