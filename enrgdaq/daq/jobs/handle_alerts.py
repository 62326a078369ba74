"""``DAQJobHandleAlerts``: keeps every alert of its node as a row in a store.

Rows: ``timestamp`` (the alert's date, unix ms), ``daq_job`` (the type of the job that
raised it), ``severity``, ``message``, and (*new*) ``daq_job_unique_id`` and
``supervisor``. One row per alert, sent as it arrives.
"""

from __future__ import annotations

import time

import pyarrow as pa

from enrgdaq.daq.alert.models import DAQJobMessageAlert
from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig
from enrgdaq.daq.topics import Topic, exact

DAQ_JOB_HANDLE_ALERTS_SLEEP_INTERVAL_SECONDS = 1.0


class DAQJobHandleAlertsConfig(StorableDAQJobConfig, kw_only=True):
    """``store_config``: where the alert rows go (e.g. ``[store_config.csv]``)."""


def alert_row(alert: DAQJobMessageAlert) -> pa.Table:
    info = alert.daq_job_info
    return pa.table(
        {
            "timestamp": [int(alert.date.timestamp() * 1000)],
            "daq_job": [info.daq_job_type if info else "unknown"],
            "severity": [alert.alert_info.severity.value],
            "message": [alert.alert_info.message],
            "daq_job_unique_id": [info.unique_id if info else "unknown"],
            "supervisor": [alert.originated_supervisor_id or alert.supervisor_id],
        }
    )


class DAQJobHandleAlerts(DAQJob):
    allowed_message_in_types = [DAQJobMessageAlert]
    config_type = DAQJobHandleAlertsConfig
    config: DAQJobHandleAlertsConfig

    def _subscriptions(self) -> list[bytes]:
        return [*super()._subscriptions(), exact(Topic.alert(self.supervisor_info.supervisor_id))]

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        if isinstance(message, DAQJobMessageAlert):
            self._put_message_out(
                DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=alert_row(message))
            )
        return True

    def start(self) -> None:
        while not self._has_been_freed:
            time.sleep(0.1)
