"""``DAQJobAlertSlack``: posts each alert to a Slack incoming webhook.

Alerts wait in a bounded queue (``queue_size``) and are posted one by one from the job's
loop. A post that fails (no answer, an HTTP error, an answer other than ``ok``) is retried
with doubling backoff from ``retry_backoff_seconds`` up to ``retry_backoff_max_seconds``,
``max_attempts`` times in all; an alert that still cannot be delivered, or that finds the
queue full, is counted (``alerts_failed`` / ``alerts_dropped`` in the job's stats) and logged
without the URL. The webhook URL never appears in logs, status or messages.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Annotated, Any

import msgspec

from enrgdaq.daq.alert.base import DAQJobAlert
from enrgdaq.daq.alert.models import DAQAlertSeverity, DAQJobMessageAlert
from enrgdaq.daq.alert.webhook import describe_failure, post_json
from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.errors import ConfigValueError

_COLORS = {
    DAQAlertSeverity.INFO: "good",
    DAQAlertSeverity.WARNING: "warning",
    DAQAlertSeverity.ERROR: "danger",
}


class DAQJobAlertSlackConfig(DAQJobConfig, kw_only=True):
    """``slack_webhook_url`` (required, a secret: keep the file private).

    Attributes (*new*, with defaults):
        queue_size: alerts waiting for delivery at most; more are dropped (counted).
        max_attempts: posts of one alert before it counts as failed.
        retry_backoff_seconds / retry_backoff_max_seconds: first and largest wait between posts.
        timeout_seconds: how long one post may take.
    """

    slack_webhook_url: str
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    retry_backoff_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    retry_backoff_max_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0

    def __post_init__(self) -> None:
        # The message names the field, never the value: the URL is a secret.
        if not self.slack_webhook_url.startswith(("https://", "http://")):
            raise ConfigValueError("slack_webhook_url must be an http(s) URL (its value is not shown)")


def slack_payload(alert: DAQJobMessageAlert) -> dict[str, Any]:
    """One Slack attachment per alert, with the original's fields."""
    info = alert.daq_job_info
    sender = info.daq_job_type if info else "unknown"
    severity = alert.alert_info.severity
    return {
        "text": f"[{severity.value}] {alert.alert_info.message}",
        "attachments": [
            {
                "fallback": alert.alert_info.message,
                "color": _COLORS.get(severity, "warning"),
                "author_name": sender,
                "title": "Alert!",
                "fields": [
                    {"title": "Supervisor ID", "value": alert.supervisor_id, "short": True},
                    {
                        "title": "Originated Supervisor ID",
                        "value": alert.originated_supervisor_id,
                        "short": True,
                    },
                    {"title": "Severity", "value": severity.value, "short": True},
                    {"title": "Date", "value": alert.date.strftime("%Y-%m-%d %H:%M:%S"), "short": True},
                    {"title": "Message", "value": alert.alert_info.message, "short": False},
                ],
            }
        ],
    }


class DAQJobAlertSlack(DAQJobAlert):
    config_type = DAQJobAlertSlackConfig
    config: DAQJobAlertSlackConfig

    def __init__(self, config: DAQJobAlertSlackConfig, **kwargs: Any) -> None:
        # Before the base class starts receiving: an alert may arrive at once.
        self._pending: collections.deque[DAQJobMessageAlert] = collections.deque()
        self._wake = threading.Event()
        super().__init__(config, **kwargs)

    def send_alert(self, alert: DAQJobMessageAlert) -> None:
        if len(self._pending) >= self.config.queue_size:
            self.counters.count("alerts_dropped")
            self._logger.error(
                "alert queue full (%d): dropped an alert (%s)",
                self.config.queue_size,
                alert.alert_info.message,
            )
            return
        self._pending.append(alert)
        self._wake.set()

    def start(self) -> None:
        while not self._has_been_freed:
            if not self._pending:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            self._post_with_retries(self._pending[0])
            self._pending.popleft()

    def _post_with_retries(self, alert: DAQJobMessageAlert) -> None:
        """Post one alert, retrying with backoff; ends early only when the job stops."""
        cfg = self.config
        wait = cfg.retry_backoff_seconds
        payload = slack_payload(alert)
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                post_json(cfg.slack_webhook_url, payload, cfg.timeout_seconds)
            except Exception as exc:  # any failure of one post is retried; the URL is never shown
                why = describe_failure(exc)
                self.counters.count("alert_post_failures")
                self.counters.last_error = f"Slack post failed: {why}"
                if attempt == cfg.max_attempts:
                    break
                self._logger.warning(
                    "Slack post failed (%s), attempt %d of %d; retrying in %.1f s",
                    why,
                    attempt,
                    cfg.max_attempts,
                    wait,
                )
                if self._sleep(wait):
                    return
                wait = min(wait * 2, cfg.retry_backoff_max_seconds)
                continue
            self.counters.count("alerts_delivered")
            self.counters.record_out(0)
            if attempt > 1:
                self._logger.info("Slack alert delivered after %d attempts", attempt)
            return
        self.counters.count("alerts_failed")
        self._logger.error(
            "Slack alert not delivered after %d attempts, given up: %s",
            cfg.max_attempts,
            alert.alert_info.message,
        )

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until the job stops; True if it stops."""
        end = time.monotonic() + seconds
        while not self._has_been_freed and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        return self._has_been_freed
