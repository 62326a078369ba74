"""Topic names of the message plane (the original's scheme).

ZMQ matches subscriptions by prefix, so ``daq_job.job1`` would also receive
``daq_job.job10``. On the wire every topic therefore ends with
:data:`TERMINATOR`; an exact subscription includes it, a prefix subscription
(``topics_to_subscribe`` in a job's TOML) does not.
"""

from __future__ import annotations

TERMINATOR = "\x00"


def wire(topic: str) -> bytes:
    """The first frame of a message sent on ``topic``."""
    return (topic + TERMINATOR).encode()


def exact(topic: str) -> bytes:
    """Subscription that matches ``topic`` and nothing that merely starts like it."""
    return wire(topic)


def prefix(topic: str) -> bytes:
    """Subscription that matches every topic starting with ``topic``."""
    return topic.encode()


def from_wire(frame: bytes) -> str:
    """The topic of a received first frame (what follows the terminator is a sequence stamp)."""
    return frame.split(TERMINATOR.encode(), 1)[0].decode(errors="replace")


class Topic:
    """Builders for the topic strings (same names and shapes as the original)."""

    @staticmethod
    def supervisor_broadcast(supervisor_id: str) -> str:
        return f"supervisor.{supervisor_id}.daq_job.broadcast"

    @staticmethod
    def supervisor_internal(supervisor_id: str) -> str:
        return f"supervisor.{supervisor_id}.internal"

    @staticmethod
    def daq_job_direct(unique_id: str) -> str:
        return f"daq_job.{unique_id}"

    @staticmethod
    def store(store_type_name: str) -> str:
        return f"store.{store_type_name}"

    @staticmethod
    def store_supervisor(supervisor_id: str, store_type_name: str) -> str:
        return f"store.supervisor.{supervisor_id}.{store_type_name}"

    @staticmethod
    def stats_all() -> str:
        return "stats.supervisor"

    @staticmethod
    def stats_supervisor(supervisor_id: str) -> str:
        return f"stats.supervisor.{supervisor_id}"

    @staticmethod
    def stats_combined(supervisor_id: str) -> str:
        return f"stats.combined.supervisor.{supervisor_id}"

    @staticmethod
    def traces(supervisor_id: str) -> str:
        return f"traces.supervisor.{supervisor_id}"

    @staticmethod
    def traces_combined(supervisor_id: str) -> str:
        return f"traces.combined.supervisor.{supervisor_id}"

    @staticmethod
    def alert(supervisor_id: str) -> str:
        """Alerts raised on a supervisor's node (*new*: the original gave alerts no topic)."""
        return f"alert.supervisor.{supervisor_id}"
