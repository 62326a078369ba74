"""What ``DAQJobHealthcheck`` checks, as plain functions of the stats it receives.

Every check keeps, per job, whether it is alerting now, so that it raises one alert when a
job goes bad and one when it recovers, never one per stats tick. Kept apart from the job so
that the rules can be read (and tested) without processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from enrgdaq.daq.alert.models import DAQAlertInfo, DAQAlertSeverity
from enrgdaq.daq.models import DAQJobStats, DAQJobStatsRecord
from enrgdaq.errors import ConfigValueError

STATS_FRESH_SECONDS = 3.0
"""Stats written this recently describe the job as it is (they are written once a second)."""
INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
DOWN_STATES = {
    "crashed": DAQAlertSeverity.ERROR,
    "restart_scheduled": DAQAlertSeverity.ERROR,
    "waiting": DAQAlertSeverity.ERROR,
    "starting": DAQAlertSeverity.ERROR,
    "registered": DAQAlertSeverity.ERROR,
    "stalled": DAQAlertSeverity.WARNING,
}
"""States that mean "not running" for a job that should run (``stopped``, a person's stop, is
not one)."""


class AlertCondition(StrEnum):
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"


def parse_interval(text: str) -> timedelta:
    match = INTERVAL.match(text)
    if match is None:
        raise ConfigValueError(f"interval {text!r} is not a duration like '30s', '5m' or '1h'")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def stats_value(stats: DAQJobStats, key: str) -> Any:
    """``stats_key`` of a job's stats: a field (``message_out_stats``) or a dotted path to a
    number (``resource_stats.rss_mb``)."""
    value: Any = stats
    for part in key.split("."):
        value = getattr(value, part)
    return value


def check_stats_key(key: str, numeric: bool) -> None:
    """Raise a ConfigValueError naming the choices if ``key`` is not a stats field (or, for
    a bound, a number)."""
    try:
        value = stats_value(DAQJobStats(), key)
    except AttributeError:
        fields = ", ".join(DAQJobStats.__struct_fields__)
        raise ConfigValueError(
            f"stats_key {key!r} is not a stats field; choose one of: {fields} "
            "(or a number inside one, e.g. 'resource_stats.rss_mb')"
        ) from None
    if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigValueError(f"stats_key {key!r} is not a number, so it cannot have min_value/max_value")


class HealthcheckItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``alert_info``: the alert when the check fails; ``alive_alert_info``: the one when it
    passes again (default: an info alert "recovered: <alert_info.message>")."""

    alert_info: DAQAlertInfo
    alive_alert_info: DAQAlertInfo | None = None


class HealthcheckStatsItem(HealthcheckItem, kw_only=True):
    """One check of the stats of every job that ``daq_job_type`` names.

    ``daq_job_type``: a job type (``DAQJobTest``, or without the prefix, any case:
    ``test``, ``n1081b``), a job's unique id, or ``*`` for every job.

    Time checks (the original's): ``stats_key`` a record (``message_out_stats``,
    ``message_in_stats``, ``restart_stats``, ...) or ``is_alive``; ``interval`` like ``30s``,
    ``2m``, ``1h``; ``alert_if_interval_is = "unsatisfied"`` alerts when the record has not
    been updated within the interval (a job that stopped sending), ``"satisfied"`` when it
    has (a restart within the last minute).

    Bound checks (*new*): ``min_value`` / ``max_value`` on a number (``resource_stats.rss_mb``,
    ``latency_stats.p99_ms``, ``message_out_rate``, ``ring_occupancy``); with ``interval``,
    only once the value has been out of bounds that long.
    """

    daq_job_type: str
    stats_key: str
    alert_if_interval_is: AlertCondition | None = None
    interval: str | None = None
    amount: int | None = None
    min_value: float | None = None
    max_value: float | None = None

    def __post_init__(self) -> None:
        if self.amount is not None:
            raise ConfigValueError(
                "amount is not supported (the original never implemented it); use interval"
            )
        if self.interval is not None:
            parse_interval(self.interval)
        bound = self.min_value is not None or self.max_value is not None
        check_stats_key(self.stats_key, numeric=bound)
        if not bound and (self.interval is None or self.alert_if_interval_is is None):
            raise ConfigValueError(
                "a healthcheck item needs interval and alert_if_interval_is (a time check), "
                "or min_value / max_value (a bound check)"
            )

    @property
    def seconds(self) -> float:
        return parse_interval(self.interval).total_seconds() if self.interval else 0.0


def names_job(name: str, daq_job_type: str, unique_id: str, aliases: dict[str, str]) -> bool:
    """Whether a check's ``daq_job_type`` names this job (see :class:`HealthcheckStatsItem`)."""
    wanted = aliases.get(name, name).lower()
    kind = daq_job_type.lower()
    return wanted in ("*", kind, kind.removeprefix("daqjob"), unique_id.lower())


@dataclass
class Verdict:
    """A check's state for one job: since when it has been failing, and whether it alerted."""

    bad_since: datetime | None = None
    alerted: bool = False


@dataclass
class JobWatch:
    """What the built-in watch remembers of a job between ticks."""

    first_seen: datetime
    state: str = ""
    restarts: int = 0
    alive_at: datetime | None = None
    down_alerted: bool = False
    verdicts: dict[int, Verdict] = field(default_factory=dict)


def failing(item: HealthcheckStatsItem, stats: DAQJobStats, watch: JobWatch, now: datetime) -> bool:
    """Whether ``item`` fails for this job now (before its interval is applied to bounds)."""
    if item.min_value is not None or item.max_value is not None:
        value = float(stats_value(stats, item.stats_key))
        return (item.max_value is not None and value > item.max_value) or (
            item.min_value is not None and value < item.min_value
        )
    value = stats_value(stats, item.stats_key)
    if isinstance(value, DAQJobStatsRecord):
        last = value.last_updated
    elif item.stats_key == "is_alive":
        last = watch.alive_at
    else:
        last = now  # a gauge (latency, resources) is current whenever stats arrive
    window = timedelta(seconds=item.seconds)
    if item.alert_if_interval_is is AlertCondition.SATISFIED:
        return last is not None and now - last < window
    # unsatisfied: nothing within the interval (counted from when the check first saw the job).
    # For a running job whose stats are fresh, measured at the moment it wrote them, so that the
    # ~1 s they take to arrive never counts as silence; a job that is not running, or whose stats
    # stopped coming, is measured against now.
    at = stats.updated_at
    fresh = (
        stats.is_alive
        and at is not None
        and timedelta(0) <= now - at <= timedelta(seconds=STATS_FRESH_SECONDS)
    )
    since = max(last or watch.first_seen, watch.first_seen)
    return (at if fresh and at is not None else now) - since > window
