"""Supervisor-level configuration structs, decoded from ``supervisor.toml``.

Names and defaults are the original ENRGDAQ's; the fields marked *new* are
documented in ``docs/configuration.md``. Every struct forbids unknown keys so
that a typo is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum

import msgspec

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
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
    """Command-and-control settings of the original; accepted, not yet served."""

    verbosity: LogVerbosity = LogVerbosity.INFO
    is_server: bool = False
    server_host: str = "localhost"
    server_port: int = 1638
    rest_api_enabled: bool = False
    rest_api_host: str = "localhost"
    rest_api_port: int = 8000


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
    """

    info: SupervisorInfo
    verbosity: LogVerbosity = LogVerbosity.INFO
    cnc: SupervisorCNCConfig | None = None
    federation: SupervisorFederationConfig | None = None
    ring_buffer_size_mb: int = 256
    ring_buffer_slot_size_kb: int = 1024
    redis_url: str | None = None
    run_dir: str | None = None
    plugins: list[str] = []
    restart_backoff_max_seconds: float = 60.0
