"""Masking secrets in anything shown to an operator: status, job configs, errors, log lines.

A job's TOML may hold a database password, a token or a Slack webhook URL (whose path *is* the
secret). Whatever the REST API or the CLI shows goes through :func:`mask_text` (free text) or
:func:`mask_value` (a parsed config), so that none of them leaves the machine by being looked at.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api_?key|auth|credential|webhook|private_?key)", re.I)
"""Config keys whose values are secrets, whatever they hold (``password``, ``slack_webhook``...)."""

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_WEBHOOK = re.compile(
    r"(?P<host>https?://(hooks\.slack\.com|discord(app)?\.com/api/webhooks|[^/\s]*webhook[^/\s]*)"
    r")/[^\s\"'<>]+",
    re.I,
)
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(pass(word|wd)?|secret|token|api_?key)[\w.-]*\b\s*[=:]\s*)"
    r"(?P<quote>[\"']?)(?P<value>[^\s\"',;&]+)",
    re.I,
)
_BEARER = re.compile(r"(?P<scheme>\b(Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}", re.I)


def mask_text(text: str) -> str:
    """``text`` with URL passwords, webhook paths, ``password=...`` values and bearer tokens masked."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _WEBHOOK.sub(lambda m: f"{m['host']}/{MASK}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['scheme']}{MASK}", text)


def mask_value(value: Any, key: str = "") -> Any:
    """A parsed config (dicts, lists, scalars) with the values of secret keys replaced by ``***``
    and every other string passed through :func:`mask_text`."""
    if isinstance(value, dict):
        return {k: mask_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, key) for v in value]
    if key and SECRET_KEY.search(key) and value not in (None, "", False, True):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    return value
