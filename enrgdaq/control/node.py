"""The supervisor record: what a job process needs to know about its supervisor.

Written by the supervisor when it starts, read by every job run: where the
proxy listens, the supervisor's info, which plugin modules to import.
"""

from __future__ import annotations

import json
import os
import socket
import time

import msgspec
import redis

from enrgdaq.control.keys import Keys
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import SupervisorNotFoundError
from enrgdaq.models import SupervisorInfo

SUPERVISOR_ALIVE_TTL_MS = 3000
STARTING_ALIVE_TTL_MS = 20_000
"""How long a supervisor that has just started counts as alive before beat's first heartbeat
tick: ``enrgdaq up`` starts beat only once the jobs run, seconds later on a busy machine."""


class SupervisorRecord(msgspec.Struct, kw_only=True):
    supervisor_id: str
    info: SupervisorInfo
    xpub_url: str
    xsub_url: str
    run_dir: str
    plugins: list[str] = []
    config_dir: str = ""
    hostname: str = ""
    pid: int = 0
    session: str = ""
    started_at: float = 0.0
    restart_backoff_max_seconds: float = 60.0
    data_plane: DataPlaneSettings | None = None

    def save(self, client: redis.Redis) -> None:
        client.set(Keys(self.supervisor_id).supervisor, msgspec.json.encode(self))

    @classmethod
    def load(cls, client: redis.Redis, supervisor_id: str) -> SupervisorRecord:
        raw = client.get(Keys(supervisor_id).supervisor)
        if raw is None:
            raise SupervisorNotFoundError(
                f"no supervisor '{supervisor_id}' is registered in Redis; start it with "
                "`celery -A enrgdaq worker -Q supervisor` or `enrgdaq up CONFIG_DIR`"
            )
        return msgspec.json.decode(raw if isinstance(raw, bytes) else str(raw).encode(), type=cls)

    @classmethod
    def load_any(cls, client: redis.Redis) -> list[SupervisorRecord]:
        found = []
        for key in client.scan_iter(match="enrgdaq:*:supervisor", count=100):
            sid = str(key).split(":")[1]
            found.append(cls.load(client, sid))
        return found


def last_seen_key(supervisor_id: str) -> str:
    """String without a TTL: the epoch time of the supervisor's last heartbeat (its alive key
    expires; this one says when a lost node was last heard of)."""
    return f"{Keys(supervisor_id).supervisor}:last_seen"


def mark_alive(client: redis.Redis, supervisor_id: str, ttl_ms: int = SUPERVISOR_ALIVE_TTL_MS) -> None:
    now = json.dumps(time.time())
    pipe = client.pipeline(transaction=False)
    pipe.set(Keys(supervisor_id).supervisor_alive, now, px=ttl_ms)
    pipe.set(last_seen_key(supervisor_id), now)
    pipe.execute()


def last_seen(client: redis.Redis, supervisor_id: str) -> float | None:
    """When the supervisor last said it is alive (None: never, or before this was recorded)."""
    raw = client.get(last_seen_key(supervisor_id))
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def this_host() -> str:
    """This machine's name as the registry records it (``ENRGDAQ_HOSTNAME`` overrides it).

    The supervisor checks a job's process directly only when the job runs on its
    own host; give containers that share a PID namespace the same name, others not.
    """
    return os.environ.get("ENRGDAQ_HOSTNAME") or socket.gethostname()


def plane_missing_here(record: SupervisorRecord) -> str | None:
    """Why this machine cannot reach ``record``'s message plane (None: it can). The plane's ipc
    sockets are files in the node's run directory: on another host (a worker that took this
    node's queue without being on its machine) they are not there, and a job's messages would
    go nowhere while it showed as running."""
    for url in (record.xpub_url, record.xsub_url):
        if url.startswith("ipc://") and not os.path.exists(url.removeprefix("ipc://")):
            return (
                f"node '{record.supervisor_id}' (supervisor on host '{record.hostname or '?'}') has its "
                f"message plane in {record.run_dir}, which this machine ('{this_host()}') does not have "
                f"({url} is missing): a worker runs the jobs of the node whose supervisor is on its "
                "machine. Make this machine a node of its own (docs/hardware.md, 'A device on another "
                "machine'), or run this worker where that supervisor runs"
            )
    return None
