"""Running the API: bind (a taken port is a clear error), serve with uvicorn, and announce the
address in Redis (``Keys.api``, a TTL refreshed while serving, deleted at exit) so that
``enrgdaq status`` shows it as ``api_url``."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
from collections.abc import Callable

import redis
import uvicorn

from enrgdaq.api.app import create_app
from enrgdaq.api.settings import ApiSettings
from enrgdaq.control.keys import Keys
from enrgdaq.control.node import this_host
from enrgdaq.control.operations import Operator
from enrgdaq.errors import ControlPlaneError

logger = logging.getLogger(__name__)

ANNOUNCE_TTL_MS = 15_000
ANNOUNCE_EVERY_SECONDS = 5.0
GRACEFUL_SHUTDOWN_SECONDS = 3
PORT_TAKEN_EXIT = 4
"""``enrgdaq api``'s exit code when its port is taken (``enrgdaq up`` then says so and goes on)."""


class PortTakenError(ControlPlaneError):
    """Raised when the API's address is already in use by another program."""


def bind(settings: ApiSettings) -> socket.socket:
    """A listening socket on the configured address (port 0: a free one, for tests)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTakenError(
                f"port {settings.port} on {settings.host} is taken by another program: the REST API and "
                "status page cannot start; choose another with [cnc] rest_api_port in supervisor.toml "
                "(or --port)"
            ) from exc
        raise ControlPlaneError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def port_free(settings: ApiSettings) -> bool:
    """Whether :func:`bind` would succeed now (``enrgdaq up`` asks before it starts the API)."""
    try:
        bind(settings).close()
    except ControlPlaneError:
        return False
    return True


class Announcer(threading.Thread):
    """Keeps ``Keys.api`` set while the server serves; Redis being away only delays it."""

    def __init__(self, client: redis.Redis, supervisor_id: str, url: str) -> None:
        super().__init__(name="api-announcer", daemon=True)
        self.client = client
        self.key = Keys(supervisor_id).api
        self.value = json.dumps({"url": url, "pid": os.getpid(), "host": this_host()})
        self.stopping = threading.Event()

    def run(self) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                self.client.set(self.key, self.value, px=ANNOUNCE_TTL_MS)
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    logger.warning("cannot announce the API address in Redis (%s); retrying", exc)
                failing = True
            self.stopping.wait(ANNOUNCE_EVERY_SECONDS)

    def stop(self) -> None:
        """Stop refreshing and remove the address, unless another API has replaced it meanwhile."""
        self.stopping.set()
        self.join(2.0)
        with contextlib.suppress(redis.RedisError):
            if self.client.get(self.key) == self.value:
                self.client.delete(self.key)


def serve(operator: Operator, settings: ApiSettings, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Raises :class:`ConfigError` for an unsafe setting and
    :class:`PortTakenError` for a taken port, before anything is served."""
    settings.check()
    sock = bind(settings)
    port = int(sock.getsockname()[1])
    url = settings.url(port)
    config = uvicorn.Config(
        create_app(operator, settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    server = uvicorn.Server(config)
    announcer = Announcer(operator.registry.redis, operator.supervisor_id, url)
    announcer.start()
    logger.info("REST API and status page: %s (supervisor '%s')", url, operator.supervisor_id)
    if on_ready is not None:
        on_ready(url)
    try:
        server.run(sockets=[sock])
    finally:
        announcer.stop()
        sock.close()
