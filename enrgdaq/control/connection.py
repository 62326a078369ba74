"""Redis connections of the control plane, and URL redaction for anything printed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import redis

from enrgdaq.settings import redis_url


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and status output)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r":[^@/]*@", ":***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def connect(url: str | None = None) -> redis.Redis:
    """A client that decodes replies to ``str`` and fails fast when Redis is away."""
    return redis.Redis.from_url(
        url or redis_url(None),
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=10,
    )
