"""The data plane's settings for one job, handed over by the runner from ``supervisor.toml``."""

from __future__ import annotations

import msgspec


class DataPlaneSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Attributes:
    run_dir: where ring files live (shared by the producer and its consumers).
    enabled: use rings at all (``ring_enabled`` in supervisor.toml).
    ring_bytes / slot_bytes: per producer (``ring_buffer_size_mb``, ``ring_buffer_slot_size_kb``).
    block_timeout_s: a producer that waits this long for a slot reports it (``block``)
        or drops the message, counted (``drop``).
    policy: ``block`` (lossless, the default) or ``drop``.
    consumer_timeout_s: a consumer without a heartbeat for this long is evicted;
        what it misses from then on is counted.
    """

    run_dir: str
    enabled: bool = True
    ring_bytes: int = 256 * 2**20
    slot_bytes: int = 2**20
    block_timeout_s: float = 5.0
    policy: str = "block"
    consumer_timeout_s: float = 60.0


def ring_path(run_dir: str, producer_id: str) -> str:
    return f"{run_dir}/ring-{producer_id}"


RING_PREFIX = "ring-"
