"""The HTTP side of ``DAQJobServeHTTP``: a threaded, read-only file server confined to one
directory, with optional token check and the ``{TODAY}`` / ``{YESTERDAY}`` date words."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DATE_WORD = re.compile(r"\{?(?<![A-Za-z0-9])(TODAY|YESTERDAY)(?![A-Za-z0-9])\}?")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def substitute_dates(path: str, today: date | None = None) -> str:
    """``TODAY`` / ``{TODAY}`` -> ``2026-12-02`` and likewise ``YESTERDAY``, as whole words."""
    day = today or date.today()

    def repl(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("{") != text.endswith("}"):
            return text  # a lone brace: not the placeholder
        when = day if match.group(1) == "TODAY" else day - timedelta(days=1)
        return when.isoformat()

    return DATE_WORD.sub(repl, path)


class ConfinedHandler(SimpleHTTPRequestHandler):
    """Serves files below ``directory`` only; GET and HEAD; no request log."""

    check_token: Callable[[str], bool] | None = None
    server_version = "enrgdaq"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a file server polled by dashboards would flood the job's log."""

    def _authorized(self) -> bool:
        if self.check_token is None:
            return True
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.check_token(header[len("Bearer ") :].strip()):
            return True
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        return any(self.check_token(t) for t in query.get("token", []))

    def _confined(self) -> bool:
        """Rewrite the date words; refuse paths that climb out of the served directory."""
        parts = urllib.parse.urlsplit(self.path)
        raw = urllib.parse.unquote(parts.path)
        if "\x00" in raw or any(seg == ".." for seg in raw.replace("\\", "/").split("/")):
            return False
        self.path = urllib.parse.quote(substitute_dates(raw))
        root = os.path.realpath(self.directory)
        target = os.path.realpath(self.translate_path(self.path))
        return target == root or target.startswith(root + os.sep)

    def _guard(self) -> bool:
        if not self._authorized():
            self.send_error(HTTPStatus.UNAUTHORIZED, "token required")
            return False
        if not self._confined():
            self.send_error(HTTPStatus.FORBIDDEN, "outside the served directory")
            return False
        return True

    def do_GET(self) -> None:
        if self._guard():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._guard():
            super().do_HEAD()


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, directory: str, check: Callable[[str], bool] | None) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        handler = partial(_handler_class(check), directory=directory)
        super().__init__((host, port), handler)


def _handler_class(check: Callable[[str], bool] | None) -> type[ConfinedHandler]:
    return type("TokenHandler", (ConfinedHandler,), {"check_token": staticmethod(check) if check else None})
