"""A data Redis that requires a password (the Redis store's ``password``), on a random port."""

from __future__ import annotations

import os
import secrets
import subprocess

import redis

from enrgdaq.local.redis_server import find_redis_server, server_args
from tests.harness.redis_proc import RedisProcess
from tests.harness.waiting import wait_for


class PasswordRedisProcess(RedisProcess):
    """Like RedisProcess (AOF, same port across restarts), with ``requirepass``."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        self.password = "rpw-" + secrets.token_hex(12)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = server_args(find_redis_server(), self.port, self.data_dir, password=self.password)
        log = open(os.path.join(self.data_dir, "redis.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        wait_for(up, 10, "redis-server (with a password) to answer")
        client.close()
