"""Noticing edits in the config directory while the system runs.

A job whose config could not work is ``crashed`` until its file changes; a
fixed file, a new file or a removed one should take effect without restarting
anything else. The supervisor's heartbeat tick (1 s) asks :class:`ConfigWatcher`
whether anything changed (a ``stat`` per file) and, if so, reads the directory
again and brings the registry in line (:func:`enrgdaq.control.sync.sync_registry`).
"""

from __future__ import annotations

import json
import logging
import os

from enrgdaq.config.directory import read_config_dir
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.sync import sync_registry
from enrgdaq.errors import ConfigError

logger = logging.getLogger(__name__)

WATCHED_SUFFIXES = (".toml", ".py")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(config_dir: str) -> Fingerprint:
    """Name, modification time and size of every config and plugin file (cheap: one stat each)."""
    found = []
    try:
        names = sorted(os.listdir(config_dir))
    except OSError:
        return ()
    for name in names:
        if not name.endswith(WATCHED_SUFFIXES):
            continue
        try:
            st = os.stat(os.path.join(config_dir, name))
        except OSError:
            continue
        found.append((name, st.st_mtime_ns, st.st_size))
    return tuple(found)


def remember(registry: JobRegistry, config_dir: str) -> None:
    """Record the directory as applied now (the supervisor, right after it read it at start)."""
    registry.redis.set(registry.keys.config_seen, json.dumps(fingerprint(config_dir)))


class ConfigWatcher:
    """Compares the directory with what was last applied, as recorded in Redis: an edit made
    between the supervisor's start and its first tick, or across a restart of the pool
    process that runs the ticks, is still seen."""

    def __init__(self, config_dir: str) -> None:
        self.config_dir = config_dir

    def changed(self, registry: JobRegistry) -> bool:
        now = json.dumps(fingerprint(self.config_dir))
        if registry.redis.get(registry.keys.config_seen) == now:
            return False
        registry.redis.set(registry.keys.config_seen, now)
        return True

    def resync(self, registry: JobRegistry) -> None:
        """Read the directory again and apply it: new jobs start, changed ones restart with their
        new file, removed ones stop, broken ones are reported (a running job keeps its last good
        config). Edits to ``supervisor.toml`` beyond its plugins need a supervisor restart."""
        holders = {r.unique_id: r.config_file for r in registry.all() if r.config_file}
        try:
            directory = read_config_dir(self.config_dir, holders)
        except ConfigError as exc:
            logger.error("config directory unreadable, nothing changed: %s", exc)
            return
        logger.info("config directory changed: applying it (%d job(s))", len(directory.jobs))
        sync_registry(registry, directory.jobs, directory.problems)
