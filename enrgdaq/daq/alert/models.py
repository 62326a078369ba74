"""The alert message (the original's ``enrgdaq.daq.alert.models``).

An alert travels on ``alert.supervisor.<id>`` (:meth:`Topic.alert`): every alert job and
``DAQJobHandleAlerts`` of that node subscribe to it. The original set no topic, so its
alerts were never sent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from enrgdaq.daq.models import DAQJobMessage

__all__ = ["DAQAlertInfo", "DAQAlertSeverity", "DAQJobMessageAlert"]


class DAQAlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class DAQAlertInfo(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What an alert says: ``message`` (for a person) and ``severity`` (info, warning, error)."""

    message: str
    severity: DAQAlertSeverity


class DAQJobMessageAlert(DAQJobMessage, kw_only=True):
    """An alert raised by a job. ``originated_supervisor_id``: the node where it happened."""

    date: datetime = msgspec.field(default_factory=datetime.now)
    alert_info: DAQAlertInfo
    originated_supervisor_id: str = ""

    def pre_send(self) -> None:
        from enrgdaq.daq.topics import Topic

        if not self.originated_supervisor_id:
            self.originated_supervisor_id = self.supervisor_id
        self.topics.add(Topic.alert(self.supervisor_id))
