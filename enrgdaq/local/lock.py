"""One ``enrgdaq up`` per directory, per run directory, and per supervisor id on a Redis.

Two ``up`` on the same state directory or run directory would share the ZMQ
sockets, the rings and the Redis data; two with the same supervisor id on the
same Redis would share the registry. Each writes every row, and the first to
stop removes what the other still uses. So ``up`` takes these locks before it
starts anything, and a second one is refused with the first one's pid, host,
start time and config directory.

* A file lock is an ``flock`` on ``up.lock`` in the directory. The kernel drops
  it when its holder dies in any way (kill -9 included), so the lock a crashed
  ``up`` left behind is stale by construction and is simply taken; its file
  still holds the dead holder's record, which is how a take-over is told
  apart and reported. The descriptor is not inherited by children (PEP 446),
  so an orphaned child never keeps a dead ``up``'s lock.
* The Redis lock is the key ``enrgdaq:<supervisor_id>:up``, set with NX and a
  TTL of a few seconds, renewed by a thread (the main thread may spend longer
  than the TTL in one step of a shutdown). A crashed ``up``'s key expires.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

import redis

from enrgdaq.control.connection import redact
from enrgdaq.control.keys import Keys
from enrgdaq.errors import AlreadyRunningError

logger = logging.getLogger(__name__)

LOCK_FILE = "up.lock"
REDIS_TTL_SECONDS = 5.0
REDIS_RENEW_SECONDS = 1.0
HOLDER_WRITE_GRACE_SECONDS = 1.0
"""How long a refused ``up`` waits for a holder that has the lock but not yet its record."""

_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the refusal of a second ``up`` names."""

    pid: int
    host: str
    started_at: float
    config_dir: str
    owns_dir: bool = False
    """For a run directory: this ``up`` created it (or took it over from the one that did)."""

    @classmethod
    def here(cls, config_dir: str, started_at: float | None = None) -> Holder:
        return cls(os.getpid(), socket.gethostname(), started_at or time.time(), config_dir)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]),
                str(data["host"]),
                float(data["started_at"]),
                str(data["config_dir"]),
                bool(data.get("owns_dir", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def dump(self) -> str:
        return json.dumps(asdict(self))

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host}, started {started}, config {self.config_dir}"


def describe(holder: Holder | None) -> str:
    return holder.describe() if holder is not None else "pid unknown (it has not written its record yet)"


class FileLock:
    """``flock`` on ``<directory>/up.lock``; the file holds the holder's record."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self, refusal: str) -> Holder | None:
        """Take the lock; returns the record of a dead holder whose lock this takes over.

        Raises :class:`AlreadyRunningError` (``refusal``: the holder) when a live
        process holds it; the holder's file is then left as it is.
        """
        while True:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:
                continue  # the directory was removed by an up that just stopped
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _wait_for_record(fd)
                os.close(fd)
                raise AlreadyRunningError(f"{refusal}: {describe(holder)}") from None
            if _same_file(fd, self.path):
                self._fd = fd
                return Holder.parse(_read(fd))
            os.close(fd)  # its holder unlinked it on release: lock the file now at that path

    def write(self, holder: Holder) -> None:
        assert self._fd is not None
        data = holder.dump().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self, remove_directory: bool = False) -> None:
        """Remove the file, and the directory if asked and empty, while the lock is still held.

        Removing them first means a waiting ``up`` never locks a file that is then
        deleted under it (it sees the inode change and starts over).
        """
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if remove_directory:
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)  # only when empty: never someone else's files
        os.close(self._fd)
        self._fd = None


def _read(fd: int) -> str:
    return os.pread(fd, 65536, 0).decode(errors="replace")


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _wait_for_record(fd: int) -> Holder | None:
    """The holder's record; a holder that just took the lock writes it within moments."""
    deadline = time.monotonic() + HOLDER_WRITE_GRACE_SECONDS
    while True:
        holder = Holder.parse(_read(fd))
        if (holder is not None and _alive(holder)) or time.monotonic() > deadline:
            return holder
        time.sleep(0.02)


def _dead_here(holder: Holder) -> bool:
    return holder.host == socket.gethostname() and not _alive(holder)


def _alive(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True  # a shared directory: the holder's pid means nothing here
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RedisLock:
    """``enrgdaq:<supervisor_id>:up`` with a TTL: one ``up`` per supervisor id on one Redis."""

    def __init__(self, client: redis.Redis, url: str, supervisor_id: str) -> None:
        self.client = client
        self.url = url
        self.supervisor_id = supervisor_id
        self.key = f"{Keys(supervisor_id).base}:up"
        self._value = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, holder: Holder) -> Holder | None:
        """Set the key; returns the record of a dead holder of this host whose key it replaced.

        A holder on another host is waited out (its key lapses), never judged by its pid.
        """
        ttl_ms = int(REDIS_TTL_SECONDS * 1000)
        value = holder.dump()
        gone: Holder | None = None
        for _ in range(3):  # the key may expire between a refused SET and the GET
            if self.client.set(self.key, value, nx=True, px=ttl_ms):
                self._value = value
                self._renewer = threading.Thread(target=self._renew, name="up-lock", daemon=True)
                self._renewer.start()
                return gone
            held = self.client.get(self.key)
            if held is None:
                continue
            other = Holder.parse(str(held))
            if other is not None and _dead_here(other):
                # A crashed up of this machine: no need to wait for its key to lapse.
                self.client.eval(_RELEASE, 1, self.key, str(held))
                gone = other
                continue
            raise AlreadyRunningError(
                f"enrgdaq up of supervisor '{self.supervisor_id}' is already running on "
                f"{redact(self.url)}: {describe(other)}"
            )
        raise AlreadyRunningError(f"the lock {self.key} on {redact(self.url)} keeps changing hands")

    def _renew(self) -> None:
        ttl_ms = str(int(REDIS_TTL_SECONDS * 1000))
        warned = False
        while not self._stop.wait(REDIS_RENEW_SECONDS):
            try:
                kept = self.client.eval(_RENEW, 1, self.key, self._value, ttl_ms)
            except redis.RedisError as exc:
                logger.warning("could not renew %s (%s); it lapses in %s ms", self.key, exc, ttl_ms)
                continue
            if kept == 0 and not warned:
                warned = True
                logger.error("%s was taken by another enrgdaq up: %s", self.key, self.client.get(self.key))

    def release(self) -> None:
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join(REDIS_RENEW_SECONDS + 1)
        self._renewer = None
        try:
            self.client.eval(_RELEASE, 1, self.key, self._value)
        except redis.RedisError as exc:
            logger.warning("could not remove %s (%s); it lapses in %.0f s", self.key, exc, REDIS_TTL_SECONDS)


@dataclass
class UpLock:
    """Every lock of one ``enrgdaq up``: taken before anything starts, released after all stopped.

    ``run_dir_configured``: the user chose the run directory; it is then never
    removed, only the files ``up`` made in it.
    """

    state_dir: str
    run_dir: str
    run_dir_configured: bool
    redis_url: str
    supervisor_id: str
    config_dir: str

    def __post_init__(self) -> None:
        self.state = FileLock(self.state_dir)
        self.run = FileLock(self.run_dir)
        self.redis: RedisLock | None = None
        self.owns_run_dir = False

    def acquire(self, client: redis.Redis | None = None) -> list[Holder]:
        """Take every lock, or none (raising :class:`AlreadyRunningError`).

        Returns the records of dead holders whose locks this took over. ``client``
        is the configured Redis; None with a private Redis (no one else uses it).
        """
        me = Holder.here(self.config_dir)
        base = os.path.dirname(os.path.abspath(self.state_dir))
        try:
            stale_state = self.state.acquire(f"enrgdaq up is already running in {base}")
            self.state.write(me)
            existed = os.path.isdir(self.run_dir)
            stale_run = self.run.acquire(f"enrgdaq up is already running on {self.run_dir}")
            inherited = stale_run is not None and stale_run.owns_dir
            self.owns_run_dir = not self.run_dir_configured and (not existed or inherited)
            self.run.write(Holder(me.pid, me.host, me.started_at, me.config_dir, self.owns_run_dir))
            stale_redis = None
            if client is not None:
                self.redis = RedisLock(client, self.redis_url, self.supervisor_id)
                stale_redis = self.redis.acquire(me)
        except BaseException:
            self.release()
            raise
        stale = [h for h in (stale_state, stale_run, stale_redis) if h is not None]
        return list({h.pid: h for h in stale}.values())

    def release(self) -> None:
        """Give every lock back; the run directory goes too if this ``up`` owns it and it is empty."""
        if self.redis is not None:
            self.redis.release()
            self.redis = None
        self.run.release(remove_directory=self.owns_run_dir)
        if self.owns_run_dir:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.run_dir))  # /dev/shm/enrgdaq, when no other id uses it
        self.state.release()
