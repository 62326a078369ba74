"""Job states, as stored in the registry and shown by ``enrgdaq status``.

::

    registered -> waiting -> starting -> running -+-> restart_scheduled -> waiting ...
                                                  +-> stopped   (a person asked, or the job was removed)
                                                  +-> crashed   (restart_on_crash = false, or invalid config)

``stalled`` is shown, never stored: a running store whose writes fail (its data waits in the
ring, retried with backoff); :func:`enrgdaq.control.status.job_status` derives it from the
job's stats.

Every transition is one Lua script in :mod:`enrgdaq.control.scripts`, so that
two observers of the same crash (the task-failed event, the expired lease,
the vanished process) schedule exactly one restart.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    REGISTERED = "registered"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    RESTART_SCHEDULED = "restart_scheduled"
    STOPPED = "stopped"
    CRASHED = "crashed"
    STALLED = "stalled"
    """Shown only (the Lua state machine never stores it): running, but cannot write; its data
    waits in the ring."""

    @property
    def shown(self) -> str:
        """State as ``enrgdaq status`` names it (registered jobs are waiting for dispatch)."""
        return "waiting" if self is JobState.REGISTERED else self.value

    @property
    def is_live(self) -> bool:
        """A run holds (or is about to take) the lease."""
        return self in (JobState.STARTING, JobState.RUNNING)


class Outcome(StrEnum):
    """How a run ended, as reported to :meth:`JobRegistry.end`."""

    CRASHED = "crashed"  # exception, killed process, lost worker, expired lease
    EXITED = "exited"  # start() returned without a stop request: restarted like a crash
    STOPPED = "stopped"  # asked to stop (a person, a worker shutting down, a new config)
    INVALID = "invalid config"  # its config cannot work (a ConfigError): crashed until the file changes
