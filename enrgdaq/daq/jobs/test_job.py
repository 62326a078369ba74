"""``DAQJobTest``: the original's test producer of random integers, for trying things out."""

from __future__ import annotations

import random
import time
from datetime import datetime
from typing import Annotated, Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig
from enrgdaq.errors import ConfigValueError

MAX_RATE_HZ = 100_000.0
"""Beyond this a Python loop cannot keep the pace; a larger rate is a typo."""
MAX_ROWS_PER_MESSAGE = 1_000_000


class DAQJobTestConfig(StorableDAQJobConfig, kw_only=True):
    """Random rows ``timestamp, A, B, C`` with values in ``[rand_min, rand_max]``.

    Attributes:
        rate_hz: messages per second (*new*; the original sent one per second).
        rows_per_message: rows in each message (*new*; the original sent one).
    """

    rand_min: int
    rand_max: int
    rate_hz: Annotated[float, msgspec.Meta(gt=0, le=MAX_RATE_HZ)] = 1.0
    rows_per_message: Annotated[int, msgspec.Meta(ge=1, le=MAX_ROWS_PER_MESSAGE)] = 1

    def __post_init__(self) -> None:
        if self.rand_min > self.rand_max:
            raise ConfigValueError(f"rand_min ({self.rand_min}) must not exceed rand_max ({self.rand_max})")


class DAQJobTest(DAQJob):
    config_type = DAQJobTestConfig
    config: DAQJobTestConfig

    def start(self) -> None:
        period = 1.0 / self.config.rate_hz
        due = time.monotonic()
        while not self._has_been_freed:
            self._send_rows()
            due += period
            while not self._has_been_freed:
                left = due - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.1))

    def _send_rows(self) -> None:
        n = self.config.rows_per_message
        lo, hi = self.config.rand_min, self.config.rand_max
        columns: dict[str, Any] = {"timestamp": [int(datetime.now().timestamp() * 1000)] * n}
        for name in ("A", "B", "C"):
            columns[name] = [random.randint(lo, hi) for _ in range(n)]
        self._put_message_out(
            DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=pa.table(columns))
        )
