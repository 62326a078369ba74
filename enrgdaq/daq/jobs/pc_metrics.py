"""``DAQJobPCMetrics``: the machine's CPU, memory and disk use, as rows in a store.

One row per ``poll_interval_seconds``: ``timestamp`` (unix ms) and the chosen metrics in
percent (``cpu``: all cores since the last poll; ``memory``: RAM in use; ``disk``: the
filesystem of ``disk_path``). The tag is the supervisor id, as in the original. Every
sample is kept, an idle CPU (0 %) too; the original dropped those.
"""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
import psutil
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig

DAQ_JOB_PC_METRICS_QUERY_INTERVAL_SECONDS = 1


class PCMetric(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"


class DAQJobPCMetricsConfig(StorableDAQJobConfig, kw_only=True):
    """Attributes:
    metrics_to_store: any of ``cpu``, ``memory``, ``disk``; default all three.
    poll_interval_seconds: seconds between rows (default 1).
    disk_path: filesystem whose use ``disk`` reports (*new*; default ``/``).
    """

    metrics_to_store: list[PCMetric] = msgspec.field(default_factory=lambda: list(PCMetric))
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = (
        DAQ_JOB_PC_METRICS_QUERY_INTERVAL_SECONDS
    )
    disk_path: str = "/"


class DAQJobPCMetrics(DAQJob):
    config_type = DAQJobPCMetricsConfig
    config: DAQJobPCMetricsConfig

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"timestamp": int(datetime.now().timestamp() * 1000)}
        for metric in self.config.metrics_to_store:
            if metric is PCMetric.CPU:
                row["cpu"] = float(psutil.cpu_percent(None))
            elif metric is PCMetric.MEMORY:
                row["memory"] = float(psutil.virtual_memory().percent)
            else:
                row["disk"] = float(psutil.disk_usage(self.config.disk_path).percent)
        return row

    def start(self) -> None:
        psutil.cpu_percent(None)  # the first call has no interval to measure over
        due = time.monotonic()
        while not self._has_been_freed:
            due += self.config.poll_interval_seconds
            while not self._has_been_freed and time.monotonic() < due:
                time.sleep(min(0.1, max(0.0, due - time.monotonic())))
            if self._has_been_freed:
                break
            row = self.sample()
            self._put_message_out(
                DAQJobMessageStorePyArrow(
                    store_config=self.config.store_config,
                    tag=self.supervisor_info.supervisor_id,
                    table=pa.table({k: [v] for k, v in row.items()}),
                )
            )
