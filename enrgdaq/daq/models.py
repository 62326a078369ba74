"""Job configuration and the messages jobs exchange (the original's public structs).

Every message is a ``msgspec.Struct``; on the wire it is a msgpack header plus
raw frames (see :mod:`enrgdaq.message.wire`). Nothing here is ever pickled.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from enrgdaq.data.settings import RING_NAME_PATTERN
from enrgdaq.models import LogVerbosity, SupervisorInfo

__all__ = [
    "DAQJobConfig",
    "DAQJobInfo",
    "DAQJobLatencyStats",
    "DAQJobMessage",
    "DAQJobMessageCombinedStats",
    "DAQJobMessageHeartbeat",
    "DAQJobMessageJobStarted",
    "DAQJobMessageRingNotify",
    "DAQJobMessageRoutes",
    "DAQJobMessageStatsReport",
    "DAQJobMessageStop",
    "DAQJobMessageStoreQuery",
    "DAQJobMessageStoreReady",
    "DAQJobResourceStats",
    "DAQJobStats",
    "DAQJobStatsRecord",
    "InternalDAQJobMessage",
    "LogVerbosity",
]


class DAQJobConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields every job's TOML file may carry.

    Attributes:
        daq_job_type: class name of the job (required).
        verbosity: log level of this job.
        daq_job_unique_id: stable id; default: the file name without ``.toml``.
        use_shm_when_possible: let bulk payloads travel through shared memory.
        topics_to_subscribe: extra topic prefixes to receive.
        queue: Celery queue of the worker that runs the job (*new*); default:
            the job class's ``queue``.
        restart_on_crash: restart the job when it dies (*new* in TOML).
        ring_policy: this producer's ring when its stores fall behind (*new*):
            ``block`` (lossless, waits) or ``drop`` (drops after
            ``ring_block_timeout_seconds``, counted); default: supervisor.toml's.
        ring_block_timeout_seconds: how long this producer waits for a slot
            before it warns (``block``) or drops (``drop``); default: supervisor.toml's.
        node: the node (supervisor id) whose workers run this job (*new*), e.g. the
            machine with its hardware: the job is sent to ``<queue>@<node>`` and waits
            there while that node is down, never running elsewhere; default: the
            supervisor whose config directory holds the file (docs/nodes.md).
    """

    daq_job_type: str
    verbosity: LogVerbosity = LogVerbosity.INFO
    daq_job_unique_id: str | None = None
    use_shm_when_possible: bool = True
    topics_to_subscribe: list[str] = []
    queue: str | None = None
    restart_on_crash: bool = True
    ring_policy: Literal["block", "drop"] | None = None
    ring_block_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    node: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")] | None = None


class DAQJobInfo(msgspec.Struct, kw_only=True):
    """Who sent a message. ``config`` stays empty on the wire: configs hold secrets."""

    daq_job_type: str
    unique_id: str
    instance_id: int = 0
    config: str = ""
    subscribed_topics: list[str] = []
    supervisor_info: SupervisorInfo | None = None


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def _new_id() -> str:
    """Unique per message: a random per-process prefix and a counter (cheaper than a uuid4 each)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


class DAQJobMessage(msgspec.Struct, kw_only=True):
    id: str | None = msgspec.field(default_factory=_new_id)
    timestamp: datetime | None = msgspec.field(default_factory=datetime.now)
    is_remote: bool = False
    daq_job_info: DAQJobInfo | None = None
    topics: set[str] = set()

    def pre_send(self) -> None:
        """Called once before the message is sent; subclasses add their topics here."""

    @property
    def supervisor_id(self) -> str:
        info = self.daq_job_info
        if info is None or info.supervisor_info is None:
            return "unknown"
        return info.supervisor_info.supervisor_id


class InternalDAQJobMessage(DAQJobMessage, kw_only=True):
    target_supervisor: bool = True

    def pre_send(self) -> None:
        if self.target_supervisor and self.daq_job_info is not None:
            from enrgdaq.daq.topics import Topic

            self.topics.add(Topic.supervisor_internal(self.supervisor_id))


class DAQJobMessageJobStarted(InternalDAQJobMessage, kw_only=True):
    pass


class DAQJobMessageRoutes(InternalDAQJobMessage, kw_only=True):
    """Which stores take which store types: store class name -> unique ids of every store that is
    wanted, running or not (a ring payload waits in the ring for one that restarts).

    ``not_running``: the ids among them that do not run now (an inline message would reach
    nobody). Published by the supervisor every ``DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS``.
    """

    routes: dict[str, list[str]] = {}
    not_running: list[str] = []
    target_supervisor: bool = False


class DAQJobMessageStoreReady(DAQJobMessage, kw_only=True):
    """A store announces that it has subscribed, so that producers need not wait for the next routes."""

    store_type: str
    unique_id: str


class DAQJobMessageStoreQuery(DAQJobMessage, kw_only=True):
    """A new producer asks which stores are listening; each running store answers with StoreReady."""


class DAQJobMessageRingNotify(DAQJobMessage, kw_only=True):
    """Payloads wait in the producer's ring ``ring`` up to ``seq``: the consumers' wake-up.

    It carries no data; a consumer reads from its own cursor, so a lost
    notification delays a payload (until the next poll) but never loses it.
    ``ring`` is a plain ring file name (``ring-<producer id>``): any other
    (``../../etc/passwd``, an absolute path) fails to decode and is counted as
    malformed by the receiver, never opened.
    """

    ring: Annotated[str, msgspec.Meta(pattern=RING_NAME_PATTERN)]
    seq: int


class DAQJobMessageStop(DAQJobMessage, kw_only=True):
    reason: str


class DAQJobMessageHeartbeat(DAQJobMessage, kw_only=True):
    """The supervisor is alive; published every ``DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS``."""


class DAQJobStatsRecord(msgspec.Struct, kw_only=True):
    count: int = 0
    last_updated: datetime | None = None


class DAQJobLatencyStats(msgspec.Struct, kw_only=True):
    """Latency of received messages (creation to handling), over the last samples.

    ``count`` is the number of samples the figures are taken from (the original
    reported the cumulative message count). ``p50_ms`` is *new*.
    """

    count: int = 0
    min_ms: float = 0.0
    max_ms: float = 0.0
    avg_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    p50_ms: float = 0.0


class DAQJobResourceStats(msgspec.Struct, kw_only=True):
    cpu_percent: float = 0.0
    rss_mb: float = 0.0


class DAQJobStats(msgspec.Struct, kw_only=True):
    message_in_stats: DAQJobStatsRecord = msgspec.field(default_factory=DAQJobStatsRecord)
    message_out_stats: DAQJobStatsRecord = msgspec.field(default_factory=DAQJobStatsRecord)
    message_in_queue_stats: DAQJobStatsRecord = msgspec.field(default_factory=DAQJobStatsRecord)
    message_out_queue_stats: DAQJobStatsRecord = msgspec.field(default_factory=DAQJobStatsRecord)
    restart_stats: DAQJobStatsRecord = msgspec.field(default_factory=DAQJobStatsRecord)
    latency_stats: DAQJobLatencyStats = msgspec.field(default_factory=DAQJobLatencyStats)
    resource_stats: DAQJobResourceStats = msgspec.field(default_factory=DAQJobResourceStats)
    is_alive: bool = True
    # New (the original's fields above keep their names and meaning):
    daq_job_type: str = ""
    state: str = ""
    """The job's state as ``enrgdaq status`` shows it (running, restart_scheduled, crashed, ...)."""
    message_in_bytes: int = 0
    message_out_bytes: int = 0
    message_in_rate: float = 0.0
    """Messages per second received, over the last stats interval."""
    message_out_rate: float = 0.0
    message_in_bytes_rate: float = 0.0
    message_out_bytes_rate: float = 0.0
    ring_occupancy: int = 0
    """Payloads waiting in this producer's ring for its stores."""
    ring_slots: int = 0
    ring_blocked_ms: int = 0
    """Time this producer has waited for a free ring slot (cumulative)."""
    last_error: str = ""
    """The last error of the job (why it crashed, why a store cannot write); no config text."""
    updated_at: datetime | None = None
    """When the job's process last wrote these numbers (once a second while it runs)."""
    stop_requested: bool = False
    """A stop was asked for (a person, ``enrgdaq up`` ending): it is not a failure."""


class DAQJobMessageStatsReport(InternalDAQJobMessage, kw_only=True):
    processed_count: int
    processed_bytes: int = 0
    sent_count: int
    sent_bytes: int = 0
    latency: DAQJobLatencyStats = msgspec.field(default_factory=DAQJobLatencyStats)
    resource_stats: DAQJobResourceStats = msgspec.field(default_factory=DAQJobResourceStats)

    def pre_send(self) -> None:
        from enrgdaq.daq.topics import Topic

        super().pre_send()
        self.topics.add(Topic.stats_supervisor(self.supervisor_id))


class DAQJobMessageCombinedStats(DAQJobMessage, kw_only=True):
    """Stats of every job of a supervisor: supervisor id -> unique id -> stats.

    The original keyed the inner dict by job type, which merged instances; it
    is keyed by unique id here.
    """

    stats: dict[str, dict[str, DAQJobStats]] = {}

    def pre_send(self) -> None:
        from enrgdaq.daq.topics import Topic

        self.topics.add(Topic.stats_combined(self.supervisor_id))


def message_summary(message: DAQJobMessage) -> dict[str, Any]:
    """A short, secret-free description of a message for debug logs."""
    return {"type": type(message).__name__, "id": message.id, "topics": sorted(message.topics)}
