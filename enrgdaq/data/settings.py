"""The data plane's settings for one job, handed over by the runner from ``supervisor.toml``."""

from __future__ import annotations

import os
import re

import msgspec

from enrgdaq.models import ID_PATTERN


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


RING_PREFIX = "ring-"
_ID_BODY = ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
RING_NAME_PATTERN = "^" + re.escape(RING_PREFIX) + _ID_BODY + r"\Z"
"""A ring's file name: ``ring-<producer unique id>``; nothing else (no separator, no ``..``)."""
_RING_NAME = re.compile(RING_NAME_PATTERN)


def ring_path(run_dir: str, producer_id: str) -> str:
    return f"{run_dir}/{RING_PREFIX}{producer_id}"


def ring_file(run_dir: str, name: object) -> str | None:
    """The path of ring ``name`` in ``run_dir``; None when ``name`` is not a ring's plain file name
    there (it came from the wire: ``../../etc/passwd``, an absolute path, a symlink out of the
    directory). Call before opening any ring named by someone else."""
    if not isinstance(name, str) or _RING_NAME.match(name) is None:
        return None
    path = os.path.join(run_dir, name)
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(run_dir):
        return None
    return path
