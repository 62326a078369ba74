"""Supervisor-level configuration structs, decoded from ``supervisor.toml``.

Names and defaults are the original ENRGDAQ's; the fields marked *new* are
documented in ``docs/configuration.md``. Every struct forbids unknown keys so
that a typo is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from enrgdaq.errors import ConfigValueError

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)]
"""An interval: positive, at most a week (a longer one is a typo, e.g. milliseconds)."""
RingMegabytes = Annotated[int, msgspec.Meta(ge=1, le=64 * 1024)]
SlotKilobytes = Annotated[int, msgspec.Meta(ge=1, le=1024 * 1024)]

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
"""Supervisor ids and job unique ids: they become topic names, Redis keys and
file names, so they are limited to letters, digits, ``_``, ``.`` and ``-``."""


class LogVerbosity(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"

    def to_logging_level(self) -> int:
        return int(logging.getLevelName(self.value))


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class SupervisorInfo(_Strict):
    supervisor_id: str
    supervisor_tags: list[str] = []


class SupervisorCNCConfig(_Strict):
    """Command-and-control settings (the original's names; docs/api.md).

    The REST API and status page are served by ``enrgdaq up`` (``enrgdaq api``) on
    ``rest_api_host:rest_api_port``, loopback by default.

    Attributes beyond the original's:
        rest_api_enabled: ``false`` turns the API off; unset or ``true``: served.
        rest_api_token: bearer token the API asks for (required when it binds beyond
            loopback); ``ENRGDAQ_API_TOKEN`` overrides it, and keeps it out of the file.
        rest_api_cors_origins: origins (``https://ui.example.org``) allowed to call the API
            from a browser; none by default (CORS off).
    """

    verbosity: LogVerbosity = LogVerbosity.INFO
    is_server: bool = False
    server_host: str = "localhost"
    server_port: Port = 1638
    rest_api_enabled: bool | None = None
    rest_api_host: str = "localhost"
    rest_api_port: Port = 8000
    rest_api_token: str | None = None
    rest_api_cors_origins: list[str] = []


class SupervisorFederationConfig(_Strict):
    """Federation settings of the original; accepted, not yet served."""

    is_server: bool = False
    server_xpub_url: str | None = None
    server_xsub_url: str | None = None
    remote_server_xpub_url: str | None = None
    remote_server_xsub_url: str | None = None


class SupervisorConfig(_Strict):
    """``supervisor.toml``.

    Attributes beyond the original's:
        redis_url: Redis for the control plane (broker, registry, schedules).
            ``ENRGDAQ_REDIS_URL`` overrides it; with neither, ``enrgdaq up``
            starts a private Redis on loopback.
        run_dir: directory for this node's ring files and ZMQ ipc sockets;
            default ``/dev/shm/enrgdaq/<supervisor_id>``. ``ENRGDAQ_RUN_DIR``
            overrides it.
        plugins: modules to import for custom job classes.
        restart_backoff_max_seconds: cap of the restart delay, which doubles
            from the job's ``restart_offset`` on each consecutive crash.
        ring_buffer_size_mb / ring_buffer_slot_size_kb: the original's names; here
            the size of *each producing job's* ring and of its slots.
        ring_enabled: bulk payloads to stores of this node go through the rings
            (``false``: everything travels inline over ZMQ).
        ring_policy: ``block`` (lossless: a producer waits for slow consumers) or
            ``drop`` (after ``ring_block_timeout_seconds``, counted).
        ring_consumer_timeout_seconds: a consumer gone this long stops holding
            producers back; what it misses from then on is counted.
    """

    info: SupervisorInfo
    verbosity: LogVerbosity = LogVerbosity.INFO
    cnc: SupervisorCNCConfig | None = None
    federation: SupervisorFederationConfig | None = None
    ring_buffer_size_mb: RingMegabytes = 256
    ring_buffer_slot_size_kb: SlotKilobytes = 1024
    redis_url: str | None = None
    run_dir: str | None = None
    plugins: list[str] = []
    restart_backoff_max_seconds: Seconds = 60.0
    ring_enabled: bool = True
    ring_policy: Literal["block", "drop"] = "block"
    ring_block_timeout_seconds: Seconds = 5.0
    ring_consumer_timeout_seconds: Seconds = 60.0

    def __post_init__(self) -> None:
        if self.ring_buffer_slot_size_kb > self.ring_buffer_size_mb * 1024:
            raise ConfigValueError(
                f"ring_buffer_slot_size_kb ({self.ring_buffer_slot_size_kb}) is larger than the ring "
                f"({self.ring_buffer_size_mb} MB): lower the slot size or raise ring_buffer_size_mb"
            )
