"""Redis key names of the control plane, all under ``enrgdaq:<supervisor_id>:``."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "enrgdaq"


@dataclass(frozen=True)
class Keys:
    supervisor_id: str

    @property
    def base(self) -> str:
        return f"{PREFIX}:{self.supervisor_id}"

    @property
    def supervisor(self) -> str:
        """Hash: where this supervisor's proxy and run directory are, its plugins, session."""
        return f"{self.base}:supervisor"

    @property
    def supervisor_alive(self) -> str:
        """String with a TTL, refreshed by every heartbeat tick."""
        return f"{self.base}:supervisor:alive"

    @property
    def jobs(self) -> str:
        """Set of the unique ids of registered jobs."""
        return f"{self.base}:jobs"

    def job(self, unique_id: str) -> str:
        """Hash: one job's record (see :mod:`enrgdaq.control.registry`)."""
        return f"{self.base}:job:{unique_id}"

    def lease(self, unique_id: str) -> str:
        """String holding the task id of the run that owns the job, with a short TTL."""
        return f"{self.base}:lease:{unique_id}"

    @property
    def restarts(self) -> str:
        """Sorted set: unique id scored by the epoch time it is due to be dispatched."""
        return f"{self.base}:restarts"

    @property
    def reconcile_lock(self) -> str:
        return f"{self.base}:reconcile:lock"

    @property
    def problems(self) -> str:
        """Hash: ``<config file>#<n>`` -> error text, for every problem of the config directory."""
        return f"{self.base}:problems"

    @property
    def config_seen(self) -> str:
        """String: the config directory's files (name, mtime, size) as last applied."""
        return f"{self.base}:config:seen"

    @property
    def api(self) -> str:
        """String with a TTL: JSON ``{"url", "pid", "host"}`` of this supervisor's REST API,
        refreshed while it serves (``enrgdaq status --json`` shows the url as ``api_url``)."""
        return f"{self.base}:api"

    def logs(self, source: str) -> str:
        """Stream: the last log lines of one job (its unique id) or of the node's own processes
        (:data:`NODE_LOG`), capped; read by ``enrgdaq logs`` and the REST API."""
        return f"{self.base}:logs:{source}"


NODE_LOG = "_node"
"""The log source name of a node's own processes (supervisor, beat, workers), beside its jobs'."""


def supervisor_ids_pattern() -> str:
    return f"{PREFIX}:*:supervisor"
