"""A real redis-server on 127.0.0.1 and a random port, with AOF in a temp dir."""

from __future__ import annotations

import os
import subprocess

import redis

from enrgdaq.local.redis_server import find_redis_server, free_port, server_args
from tests.harness.waiting import wait_for


class RedisProcess:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        os.makedirs(data_dir, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = server_args(find_redis_server(), self.port, self.data_dir, password=None)
        log = open(os.path.join(self.data_dir, "redis.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        wait_for(up, 10, "redis-server to answer")
        client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def restart(self) -> None:
        """A clean restart (SHUTDOWN writes the AOF), on the same port and data."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url).shutdown()
        except redis.RedisError:
            self.process.terminate()
        self.process.wait(10)
