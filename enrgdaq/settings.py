"""Where a node's state lives: Redis URL, run directory, ring directory, resolved in one place.

Each setting has one order of precedence, the same for ``enrgdaq up``, the
supervisor worker, ``enrgdaq status`` and the job runner: the environment
(what compose and ``enrgdaq up`` hand to their children), then
``supervisor.toml``, then the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from enrgdaq.constants import CONFIG_DIR_ENV, REDIS_URL_ENV, RUN_DIR_ENV
from enrgdaq.models import SupervisorConfig

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CONFIG_DIR = "configs/"
RUN_DIR_ROOTS = ("/dev/shm", "/tmp")
"""Run directories go below the first of these that exists (a tmpfs, so rings never touch a disk)."""


def default_run_dir(supervisor_id: str) -> str:
    base = next((root for root in RUN_DIR_ROOTS if os.path.isdir(root)), "/tmp")
    return os.path.join(base, "enrgdaq", supervisor_id)


def run_dir(config: SupervisorConfig, env: Mapping[str, str] = os.environ) -> str:
    """The directory of this node's ring files and ipc sockets (the ring directory)."""
    return env.get(RUN_DIR_ENV) or config.run_dir or default_run_dir(config.info.supervisor_id)


def configured_redis_url(config: SupervisorConfig | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The Redis someone asked for, or None (``enrgdaq up`` then starts its own)."""
    return env.get(REDIS_URL_ENV) or (config.redis_url if config is not None else None) or None


def redis_url(config: SupervisorConfig | None, env: Mapping[str, str] = os.environ) -> str:
    """The Redis of the control plane, with the default where none is configured."""
    return configured_redis_url(config, env) or DEFAULT_REDIS_URL


def config_dir(env: Mapping[str, str] = os.environ) -> str:
    return env.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR
