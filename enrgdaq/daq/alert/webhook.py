"""Posting JSON to a webhook with retries, for alert jobs (standard library only).

The URL of a webhook is a secret (whoever holds it can post to the channel), so nothing here
puts it in a log line, an exception message or a stats value: failures are described by their
HTTP status or error kind alone.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from enrgdaq.errors import DAQError


class WebhookError(DAQError):
    """A post that did not deliver: the answer was not accepted, or no answer came."""


def describe_failure(exc: BaseException) -> str:
    """What went wrong, without the URL: ``HTTP 500``, ``timed out``, ``connection refused``."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, WebhookError):
        return str(exc)
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror.lower()
        return type(reason).__name__ if not isinstance(reason, str) else "cannot reach the webhook"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def post_json(url: str, payload: dict[str, Any], timeout: float, expect: str | None = "ok") -> None:
    """POST ``payload`` as JSON; raises when the answer is not a 2xx (and, with ``expect``,
    not that body: Slack answers ``ok``)."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = response.read(4096).decode(errors="replace").strip()
        if not 200 <= response.status < 300:
            raise WebhookError(f"HTTP {response.status}")
    if expect is not None and answer != expect:
        raise WebhookError(f"answer was {answer[:40]!r}, not {expect!r}")
