"""``DAQJobHealthcheck``: raises alerts when jobs stop running, stop sending, or a stat leaves
its bounds, and again when they recover.

It reads the stats the supervisor publishes every second (``stats.combined.supervisor.<id>``,
every job keyed by unique id) and sends :class:`DAQJobMessageAlert` on its node's alert
topic, which ``DAQJobAlertSlack``, ``DAQJobHandleAlerts`` and any other alert job receive.
Each check raises one alert when it starts failing for a job and one when it passes again,
never one per tick.

* ``healthcheck_stats``: the configured checks (see :class:`HealthcheckStatsItem`).
* ``enable_alerts_on_restart`` (default true): for every job, an error alert when it stops
  running (crashed, restart scheduled, lost its worker, waiting; a store that cannot write
  is a warning), an info alert when it runs again, and an error alert for a crash and
  restart quicker than one stats tick. A stop a person asked for raises nothing.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from enrgdaq.daq.alert.models import DAQAlertInfo, DAQAlertSeverity, DAQJobMessageAlert
from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.healthcheck_rules import (
    DOWN_STATES,
    AlertCondition,
    HealthcheckItem,
    HealthcheckStatsItem,
    JobWatch,
    Verdict,
    failing,
    names_job,
)
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage, DAQJobMessageCombinedStats, DAQJobStats
from enrgdaq.daq.topics import Topic, exact

HEALTHCHECK_LOOP_INTERVAL_SECONDS = 0.1

__all__ = [
    "AlertCondition",
    "DAQJobHealthcheck",
    "DAQJobHealthcheckConfig",
    "HealthcheckItem",
    "HealthcheckStatsItem",
]


class DAQJobHealthcheckConfig(DAQJobConfig, kw_only=True):
    healthcheck_stats: list[HealthcheckStatsItem] = []
    enable_alerts_on_restart: bool = True


class DAQJobHealthcheck(DAQJob):
    allowed_message_in_types = [DAQJobMessageCombinedStats]
    config_type = DAQJobHealthcheckConfig
    config: DAQJobHealthcheckConfig

    def __init__(self, config: DAQJobHealthcheckConfig, **kwargs: Any) -> None:
        from enrgdaq.daq.types import DEPRECATED_ALIASES

        self._aliases = {k.lower(): v for k, v in DEPRECATED_ALIASES.items()}
        self._watches: dict[str, JobWatch] = {}
        self._lock = threading.Lock()
        self._unmatched_told = False
        super().__init__(config, **kwargs)

    def _subscriptions(self) -> list[bytes]:
        sid = self.supervisor_info.supervisor_id
        return [*super()._subscriptions(), exact(Topic.stats_combined(sid))]

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        if isinstance(message, DAQJobMessageCombinedStats):
            with self._lock:
                for alert in self.evaluate(message.stats.get(self.supervisor_info.supervisor_id, {})):
                    self._put_message_out(alert)
        return True

    def evaluate(self, jobs: dict[str, DAQJobStats], now: datetime | None = None) -> list[DAQJobMessageAlert]:
        """The alerts due for this tick of stats (``unique id -> stats``)."""
        now = now or datetime.now()
        alerts: list[DAQJobMessageAlert] = []
        for uid in [u for u in self._watches if u not in jobs]:
            del self._watches[uid]  # removed jobs
        for uid, stats in sorted(jobs.items()):
            watch = self._watches.get(uid)
            if watch is None:
                watch = self._watches[uid] = JobWatch(
                    first_seen=now, state=stats.state, restarts=stats.restart_stats.count
                )
                if stats.state == "crashed" and self.config.enable_alerts_on_restart:
                    alerts.append(self._down(uid, stats))
                    watch.down_alerted = True
            if stats.is_alive:
                watch.alive_at = now
            if stats.stop_requested or stats.state == "stopped":
                # A person (or the end of the run) stops it: nothing to alert, checks start over.
                watch.state, watch.down_alerted, watch.verdicts = stats.state, False, {}
                watch.restarts, watch.first_seen = stats.restart_stats.count, now
                continue
            if self.config.enable_alerts_on_restart:
                alerts += self._watch_state(uid, stats, watch)
            for index, item in enumerate(self.config.healthcheck_stats):
                if names_job(item.daq_job_type.lower(), stats.daq_job_type, uid, self._aliases):
                    alerts += self._check(index, item, uid, stats, watch, now)
        if jobs and not self._unmatched_told:
            self._unmatched_told = True
            self._tell_unmatched(jobs)
        return alerts

    def _tell_unmatched(self, jobs: dict[str, DAQJobStats]) -> None:
        """Say once which checks name no job of this supervisor (a typo, or a job elsewhere)."""
        for index, item in enumerate(self.config.healthcheck_stats):
            name = item.daq_job_type.lower()
            if not any(names_job(name, s.daq_job_type, uid, self._aliases) for uid, s in jobs.items()):
                self._logger.warning(
                    "healthcheck_stats[%d] names daq_job_type '%s', which no job of this supervisor has "
                    "(yet); it applies when one runs",
                    index,
                    item.daq_job_type,
                )

    def _watch_state(self, uid: str, stats: DAQJobStats, watch: JobWatch) -> list[DAQJobMessageAlert]:
        alerts = []
        down = stats.state in DOWN_STATES and (watch.state == "running" or stats.state == "crashed")
        if down and not watch.down_alerted:
            alerts.append(self._down(uid, stats))
            watch.down_alerted = True
        elif stats.state == "running":
            if watch.down_alerted:
                text = (
                    f"[{uid}] {stats.daq_job_type} is running again (restarts: {stats.restart_stats.count})"
                )
                alerts.append(self._alert(DAQAlertInfo(message=text, severity=DAQAlertSeverity.INFO)))
                watch.down_alerted = False
            elif stats.restart_stats.count > watch.restarts:
                text = (
                    f"[{uid}] {stats.daq_job_type} crashed and got restarted "
                    f"(restarts: {stats.restart_stats.count})"
                    + (f": {stats.last_error}" if stats.last_error else "")
                )
                alerts.append(self._alert(DAQAlertInfo(message=text, severity=DAQAlertSeverity.ERROR)))
        if stats.state != watch.state:
            self._logger.debug("%s: %s -> %s", uid, watch.state, stats.state)
        watch.state = stats.state
        watch.restarts = stats.restart_stats.count
        return alerts

    def _down(self, uid: str, stats: DAQJobStats) -> DAQJobMessageAlert:
        severity = DOWN_STATES.get(stats.state, DAQAlertSeverity.ERROR)
        text = f"[{uid}] {stats.daq_job_type} stopped running ({stats.state})"
        if stats.last_error:
            text += f": {stats.last_error}"
        return self._alert(DAQAlertInfo(message=text, severity=severity))

    def _check(
        self,
        index: int,
        item: HealthcheckStatsItem,
        uid: str,
        stats: DAQJobStats,
        watch: JobWatch,
        now: datetime,
    ) -> list[DAQJobMessageAlert]:
        verdict = watch.verdicts.setdefault(index, Verdict())
        bad = failing(item, stats, watch, now)
        bound = item.min_value is not None or item.max_value is not None
        if bad:
            verdict.bad_since = verdict.bad_since or now
            held = not bound or (now - verdict.bad_since).total_seconds() >= item.seconds
            if held and not verdict.alerted:
                verdict.alerted = True
                return [self._alert(item.alert_info, uid)]
            return []
        verdict.bad_since = None
        if not verdict.alerted:
            return []
        verdict.alerted = False
        back = item.alive_alert_info or DAQAlertInfo(
            message=f"recovered: {item.alert_info.message}", severity=DAQAlertSeverity.INFO
        )
        return [self._alert(back, uid)]

    def _alert(self, info: DAQAlertInfo, uid: str | None = None) -> DAQJobMessageAlert:
        message = info.message if uid is None else f"[{uid}] {info.message}"
        level = self._logger.info if info.severity is DAQAlertSeverity.INFO else self._logger.warning
        level("alert (%s): %s", info.severity.value, message)
        return DAQJobMessageAlert(
            alert_info=DAQAlertInfo(message=message, severity=info.severity),
            originated_supervisor_id=self.supervisor_info.supervisor_id,
        )

    def start(self) -> None:
        while not self._has_been_freed:
            time.sleep(HEALTHCHECK_LOOP_INTERVAL_SECONDS)
