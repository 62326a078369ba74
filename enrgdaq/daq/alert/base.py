"""``DAQJobAlert``: the base of jobs that deliver alerts somewhere (Slack, mail, a pager).

It subscribes to its node's alert topic and hands each alert to :meth:`send_alert`, which a
subclass implements. The original's subclasses override ``handle_message`` instead, which
still works.
"""

from __future__ import annotations

import time
from typing import Any

from enrgdaq.daq.alert.models import DAQJobMessageAlert
from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.topics import Topic, exact

DAQ_JOB_ALERT_LOOP_SLEEP_SECONDS = 1.0


class DAQJobAlert(DAQJob):
    allowed_message_in_types = [DAQJobMessageAlert]
    config_type: Any = DAQJobConfig

    def _subscriptions(self) -> list[bytes]:
        return [*super()._subscriptions(), exact(Topic.alert(self.supervisor_info.supervisor_id))]

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        if isinstance(message, DAQJobMessageAlert):
            self.send_alert(message)
        return True

    def send_alert(self, alert: DAQJobMessageAlert) -> None:
        """Deliver one alert; called on the receive thread, so keep it short (queue it)."""

    def start(self) -> None:
        while not self._has_been_freed:
            time.sleep(min(DAQ_JOB_ALERT_LOOP_SLEEP_SECONDS, 0.1))
