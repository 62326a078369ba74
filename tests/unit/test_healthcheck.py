"""DAQJobHealthcheck's decisions, tick by tick of the stats the supervisor publishes: one alert
when a job goes bad, one when it recovers, none in between; configs checked at load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import msgspec
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.healthcheck import DAQJobHealthcheck, DAQJobHealthcheckConfig
from enrgdaq.daq.models import DAQJobResourceStats, DAQJobStats, DAQJobStatsRecord
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorInfo

T0 = datetime(2026, 12, 2, 12, 0, 0)


def healthcheck(items: Sequence[Mapping[str, object]] | None = None, **options: object) -> DAQJobHealthcheck:
    config = msgspec.convert(
        {"daq_job_type": "DAQJobHealthcheck", "healthcheck_stats": list(items or []), **options},
        DAQJobHealthcheckConfig,
    )
    return DAQJobHealthcheck(config, supervisor_info=SupervisorInfo(supervisor_id="lab"))


def stats(
    state: str = "running", restarts: int = 0, last_out: datetime | None = None, rss: float = 50.0
) -> DAQJobStats:
    return DAQJobStats(
        daq_job_type="DAQJobTest",
        state=state,
        is_alive=state == "running",
        restart_stats=DAQJobStatsRecord(count=restarts),
        message_out_stats=DAQJobStatsRecord(count=10, last_updated=last_out),
        resource_stats=DAQJobResourceStats(rss_mb=rss),
    )


def run(job: DAQJobHealthcheck, ticks: list[DAQJobStats], uid: str = "prod") -> list[list[str]]:
    """Alert texts per tick, one tick a second."""
    return [
        [a.alert_info.message for a in job.evaluate({uid: s}, T0 + timedelta(seconds=n))]
        for n, s in enumerate(ticks)
    ]


def test_a_crash_alerts_once_and_the_recovery_once() -> None:
    job = healthcheck()
    ticks = [stats(), stats(), stats("restart_scheduled"), stats("restart_scheduled"), stats("starting")]
    ticks += [stats("running", restarts=1)] * 3
    alerts = run(job, ticks)
    assert alerts[:2] == [[], []]
    assert alerts[2] == ["[prod] DAQJobTest stopped running (restart_scheduled)"]
    assert alerts[3] == alerts[4] == []
    assert alerts[5] == ["[prod] DAQJobTest is running again (restarts: 1)"]
    assert alerts[6] == alerts[7] == []


def test_a_restart_quicker_than_a_tick_is_still_an_alert() -> None:
    alerts = run(healthcheck(), [stats(), stats(restarts=1), stats(restarts=1)])
    assert alerts == [[], ["[prod] DAQJobTest crashed and got restarted (restarts: 1)"], []]


def test_a_stop_a_person_asked_for_raises_nothing() -> None:
    item = {
        "daq_job_type": "test",
        "stats_key": "message_out_stats",
        "interval": "1s",
        "alert_if_interval_is": "unsatisfied",
        "alert_info": {"message": "silent", "severity": "warning"},
    }
    alerts = run(
        healthcheck([item]), [stats(last_out=T0), stats("stopped"), stats("stopped"), stats("stopped")]
    )
    assert alerts == [[], [], [], []]


def test_a_job_that_stops_sending_alerts_after_the_interval_and_again_when_it_sends() -> None:
    item = {
        "daq_job_type": "DAQJobTest",
        "stats_key": "message_out_stats",
        "interval": "2s",
        "alert_if_interval_is": "unsatisfied",
        "alert_info": {"message": "silent", "severity": "warning"},
    }
    job = healthcheck([item], enable_alerts_on_restart=False)
    t = [T0 + timedelta(seconds=n) for n in range(8)]
    last = [t[0], t[1], t[1], t[1], t[1], t[1], t[6], t[7]]
    alerts = run(job, [stats(last_out=x) for x in last])
    assert alerts == [[], [], [], [], ["[prod] silent"], [], ["[prod] recovered: silent"], []]
    alert = job.evaluate({"prod": stats(last_out=None)}, t[7] + timedelta(seconds=10))[0]
    assert alert.alert_info.severity.value == "warning"


def test_silence_is_measured_when_the_stats_were_taken_while_they_are_fresh() -> None:
    item = {
        "daq_job_type": "test",
        "stats_key": "message_out_stats",
        "interval": "1s",
        "alert_if_interval_is": "unsatisfied",
        "alert_info": {"message": "silent", "severity": "warning"},
    }
    job = healthcheck([item], enable_alerts_on_restart=False)
    job.evaluate({"prod": stats(last_out=T0)}, T0)
    late = []
    for n in range(1, 6):  # sends at 5 Hz; its stats arrive 2.5 s late (a busy machine)
        taken = T0 + timedelta(seconds=n)
        fresh = msgspec.structs.replace(stats(last_out=taken - timedelta(seconds=0.2)), updated_at=taken)
        late += job.evaluate({"prod": fresh}, taken + timedelta(seconds=2.5))
    assert late == []
    # Killed at T0+5: its last stats stay; once they are stale, silence counts up to now.
    frozen = msgspec.structs.replace(
        stats(last_out=T0 + timedelta(seconds=4.8)), updated_at=T0 + timedelta(seconds=5)
    )
    assert job.evaluate({"prod": frozen}, T0 + timedelta(seconds=7)) == []
    fired = job.evaluate({"prod": frozen}, T0 + timedelta(seconds=8.5))
    assert [a.alert_info.message for a in fired] == ["[prod] silent"]


def test_a_stop_requested_at_the_end_of_a_run_raises_nothing() -> None:
    job = healthcheck()
    stopping = msgspec.structs.replace(stats("restart_scheduled"), stop_requested=True)
    assert run(job, [stats(), stopping, stats("stopped")]) == [[], [], []]


def test_the_originals_restart_check_fires_within_its_interval_for_the_type_it_names() -> None:
    item = {
        "daq_job_type": "n1081b",
        "stats_key": "restart_stats",
        "interval": "1m",
        "alert_if_interval_is": "satisfied",
        "alert_info": {"message": "N1081B job crashed and got restarted!", "severity": "error"},
        "alive_alert_info": {"message": "N1081B fine again", "severity": "info"},
    }
    job = healthcheck([item], enable_alerts_on_restart=False)
    n1081b = DAQJobStats(daq_job_type="DAQJobN1081B", state="running")
    restarted = msgspec.structs.replace(n1081b, restart_stats=DAQJobStatsRecord(count=1, last_updated=T0))
    assert job.evaluate({"n": n1081b, "other": stats()}, T0) == []
    fired = job.evaluate({"n": restarted, "other": stats(restarts=1)}, T0 + timedelta(seconds=1))
    assert [a.alert_info.message for a in fired] == ["[n] N1081B job crashed and got restarted!"]
    assert job.evaluate({"n": restarted}, T0 + timedelta(seconds=30)) == []
    back = job.evaluate({"n": restarted}, T0 + timedelta(seconds=61))
    assert [a.alert_info.message for a in back] == ["[n] N1081B fine again"]


def test_a_bound_alerts_once_it_has_held_for_the_interval() -> None:
    item = {
        "daq_job_type": "*",
        "stats_key": "resource_stats.rss_mb",
        "max_value": 500,
        "interval": "2s",
        "alert_info": {"message": "memory above 500 MB", "severity": "warning"},
    }
    job = healthcheck([item], enable_alerts_on_restart=False)
    alerts = run(job, [stats(rss=100), stats(rss=900), stats(rss=900), stats(rss=900), stats(rss=100)])
    assert alerts == [[], [], [], ["[prod] memory above 500 MB"], ["[prod] recovered: memory above 500 MB"]]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ('stats_key = "nope"\ninterval = "1s"\nalert_if_interval_is = "satisfied"', "not a stats field"),
        ('stats_key = "restart_stats"\namount = 3\nalert_if_interval_is = "satisfied"', "amount"),
        ('stats_key = "restart_stats"\nalert_if_interval_is = "satisfied"', "needs interval"),
        (
            'stats_key = "restart_stats"\ninterval = "5 minutes"\nalert_if_interval_is = "satisfied"',
            "duration",
        ),
        ('stats_key = "restart_stats"\nmax_value = 3', "not a number"),
    ],
)
def test_a_check_that_cannot_work_is_a_config_error(item: str, expected: str) -> None:
    text = (
        'daq_job_type = "DAQJobHealthcheck"\n[[healthcheck_stats]]\ndaq_job_type = "test"\n'
        f'{item}\nalert_info = {{ message = "m", severity = "error" }}\n'
    )
    with pytest.raises(ConfigError) as error:
        decode(text, DAQJobHealthcheckConfig, "healthcheck.toml")
    assert expected in str(error.value)
