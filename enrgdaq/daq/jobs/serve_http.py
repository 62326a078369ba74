"""``DAQJobServeHTTP``: serves a directory (usually ``out/``) read-only over HTTP.

* Binds exactly ``host``:``port``. On a loopback address (``127.0.0.1``, ``localhost``,
  ``::1``) anyone on this machine may read. On any other address every request needs the
  token, as ``Authorization: Bearer <token>`` or ``?token=<token>``: ``token`` from the
  config, or else the content of ``token_file``; when neither is given the job creates a
  random token in ``token_file`` (default: ``<unique_id>.token`` beside ``serve_path``,
  mode 0600, kept across restarts) and logs the file's path, never the token.
* ``{TODAY}`` / ``{YESTERDAY}`` in a requested path (with or without the braces, as a
  whole word: ``/TODAY_stats.csv``) become the local date ``YYYY-MM-DD``, matching the
  file stores' ``add_date`` names.
* Only GET and HEAD; nothing outside ``serve_path`` is ever served (``..``, symlinks that
  lead out and absolute paths are refused); requests are not logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from typing import Annotated, Any

import msgspec

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.http_files import FileServer, is_loopback
from enrgdaq.daq.models import DAQJobConfig


class DAQJobServeHTTPConfig(DAQJobConfig, kw_only=True):
    """``serve_path``, ``host``, ``port`` (required, as in the original).

    Attributes (*new*):
        token: the token requests must carry when ``host`` is not loopback (a secret).
        token_file: file holding the token (created with a random token if missing).
    """

    serve_path: str
    host: str
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    token: str | None = None
    token_file: str | None = None


def read_or_create_token(path: str) -> str:
    """The token in ``path``; a new random one written there (0600) if the file is missing."""
    try:
        with open(path) as f:
            token = f.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class DAQJobServeHTTP(DAQJob):
    config_type = DAQJobServeHTTPConfig
    config: DAQJobServeHTTPConfig

    def __init__(self, config: DAQJobServeHTTPConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._server: FileServer | None = None

    def _token(self) -> str | None:
        cfg = self.config
        if is_loopback(cfg.host):
            return cfg.token
        if cfg.token:
            return cfg.token
        root = os.path.dirname(os.path.abspath(cfg.serve_path.rstrip("/") or "."))
        path = cfg.token_file or os.path.join(root, f"{self.unique_id}.token")
        token = read_or_create_token(path)
        self._logger.info(
            "%s is not loopback: requests need the token in %s", cfg.host, os.path.abspath(path)
        )
        return token

    def start(self) -> None:
        cfg = self.config
        token = self._token()
        check = None if token is None else (lambda given: hmac.compare_digest(given.encode(), token.encode()))
        try:
            self._server = FileServer(cfg.host, cfg.port, os.path.abspath(cfg.serve_path), check)
        except OSError as exc:
            # Restarted with backoff (the port may come free); the line says what to change.
            self._logger.error(
                "cannot listen on %s:%d (%s): another program has the port (the REST API takes "
                "127.0.0.1:8000 by default); change port in this job's file or cnc.rest_api_port",
                cfg.host,
                cfg.port,
                exc.strerror or exc,
            )
            raise
        thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{self.unique_id}", daemon=True
        )
        thread.start()
        self._logger.info(
            "serving %s read-only on http://%s:%d", cfg.serve_path, cfg.host, self._server.server_address[1]
        )
        try:
            while not self._has_been_freed and thread.is_alive():
                time.sleep(0.1)
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

    @property
    def bound_port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])
