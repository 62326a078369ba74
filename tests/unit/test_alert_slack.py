"""DAQJobAlertSlack against a real local HTTP server standing in for the webhook: delivery,
retries with backoff, a bounded queue, failures counted, and the URL never logged."""

from __future__ import annotations

import logging
import socket
import threading
import time

import msgspec
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.alert.alert_slack import DAQJobAlertSlack, DAQJobAlertSlackConfig
from enrgdaq.daq.alert.models import DAQAlertInfo, DAQAlertSeverity, DAQJobMessageAlert
from enrgdaq.daq.models import DAQJobInfo
from enrgdaq.daq.topics import Topic
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorInfo
from tests.harness.waiting import wait_for
from tests.system.monitoring_webhook import WebhookServer


def alert(text: str, severity: DAQAlertSeverity = DAQAlertSeverity.ERROR) -> DAQJobMessageAlert:
    info = DAQJobInfo(
        daq_job_type="DAQJobHealthcheck", unique_id="hc", supervisor_info=SupervisorInfo(supervisor_id="lab")
    )
    return DAQJobMessageAlert(alert_info=DAQAlertInfo(message=text, severity=severity), daq_job_info=info)


class Running:
    """A Slack job's ``start()`` on a thread, as its worker runs it; stopped on exit."""

    def __init__(self, url: str, **options: object) -> None:
        config = msgspec.convert(
            {"daq_job_type": "DAQJobAlertSlack", "slack_webhook_url": url, **options}, DAQJobAlertSlackConfig
        )
        self.job = DAQJobAlertSlack(config, supervisor_info=SupervisorInfo(supervisor_id="lab"))
        self.thread = threading.Thread(target=self.job.start, daemon=True)

    def __enter__(self) -> DAQJobAlertSlack:
        self.thread.start()
        return self.job

    def __exit__(self, *exc: object) -> None:
        self.job.request_stop()
        self.thread.join(5)
        self.job.free()


def test_an_alert_refused_twice_is_delivered_once_after_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookServer(failures=2) as hook, Running(hook.url, retry_backoff_seconds=0.2) as job:
        started = time.monotonic()
        job.send_alert(alert("detector HV tripped"))
        wait_for(lambda: hook.delivered, 10, "the delivery")
        took = time.monotonic() - started
        wait_for(lambda: job.counters.extra.get("alerts_delivered") == 1, 5, "the count")
    assert hook.messages("attempts") == ["detector HV tripped"] * 3
    assert hook.messages() == ["detector HV tripped"]
    assert took >= 0.2 + 0.4  # backoff doubles: 0.2 s, then 0.4 s
    assert job.counters.extra["alert_post_failures"] == 2
    assert "alerts_failed" not in job.counters.extra
    attachment = hook.delivered[0]["attachments"][0]
    assert attachment["color"] == "danger" and attachment["author_name"] == "DAQJobHealthcheck"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Severity"] == "error" and fields["Supervisor ID"] == "lab"
    assert "HTTP 500" in caplog.text
    assert hook.secret_path not in caplog.text and "SECRET" not in caplog.text


def test_a_webhook_that_never_answers_counts_the_alert_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/tok"
    with Running(url, retry_backoff_seconds=0.05, max_attempts=3) as job:
        job.send_alert(alert("disk full"))
        wait_for(lambda: job.counters.extra.get("alerts_failed") == 1, 10, "the alert given up")
    assert job.counters.extra["alert_post_failures"] == 3
    assert "connection refused" in caplog.text and "SECRET" not in caplog.text
    assert "SECRET" not in str(job.counters.snapshot())


def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    with (
        WebhookServer(failures=1000) as hook,
        Running(hook.url, retry_backoff_seconds=5, queue_size=2) as job,
    ):
        for n in range(5):
            job.send_alert(alert(f"alert {n}"))
        # One is being posted (held by its backoff) and two wait: the rest are dropped.
        assert job.counters.extra["alerts_dropped"] >= 2


def test_alerts_have_a_topic_that_alert_jobs_subscribe_to() -> None:
    message = alert("x")
    message.pre_send()
    assert message.topics == {Topic.alert("lab")}
    assert message.originated_supervisor_id == "lab"


def test_a_bad_webhook_url_is_a_config_error_that_does_not_show_it() -> None:
    text = 'daq_job_type = "DAQJobAlertSlack"\nslack_webhook_url = "hooks.slack.com/SECRET"\n'
    with pytest.raises(ConfigError) as error:
        decode(text, DAQJobAlertSlackConfig, "alert_slack.toml")
    assert "http(s) URL" in str(error.value) and "SECRET" not in str(error.value)
