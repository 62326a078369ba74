"""Who reads a ring: the consumer table, changed rarely and only under the ring file's lock.

Every change bumps the ring's ``consumers_gen`` word, so that a producer
re-reads the table only when it changed instead of on every message.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from enrgdaq.data import layout as L
from enrgdaq.errors import DAQError

if TYPE_CHECKING:
    from enrgdaq.data.ring import Ring


def name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") >> 1


def _locked(ring: Ring, fn: Callable[[], int]) -> int:
    fcntl.flock(ring.fd, fcntl.LOCK_EX)
    try:
        result = fn()
        ring.words[L.CONSUMERS_GEN_W] += 1
        return result
    finally:
        fcntl.flock(ring.fd, fcntl.LOCK_UN)


def find(ring: Ring, name: str) -> int | None:
    wanted = name_hash(name)
    for i in range(L.MAX_CONSUMERS):
        if ring.entry(i, L.C_STATE) != L.FREE and ring.entry(i, L.C_NAME_HASH) == wanted:
            return i
    return None


def register(ring: Ring, name: str) -> int:
    """The producer's side: the entry of ``name``, created (ACTIVE, cursor at ``write_seq``) if it has none.

    An existing entry is returned as it is, whatever its state: a store that was evicted
    or stopped for good is made active again only by itself (:func:`reactivate`), never
    by a producer whose routes still name it for a moment.
    """

    def do() -> int:
        found = find(ring, name)
        if found is not None:
            return found
        index = _free_entry(ring)
        ring.set_entry(index, L.C_CURSOR, ring.write_seq)
        ring.set_entry(index, L.C_HEARTBEAT, time.monotonic_ns())
        ring.set_entry(index, L.C_WAKEUP, 0)
        ring.set_entry(index, L.C_MISSED, 0)
        ring.set_entry(index, L.C_NAME_HASH, name_hash(name))
        start = L.NAMES_OFFSET + index * L.NAME_BYTES
        raw = name.encode()[: L.NAME_BYTES]
        ring.mm[start : start + L.NAME_BYTES] = raw.ljust(L.NAME_BYTES, b"\0")
        ring.set_entry(index, L.C_STATE, L.ACTIVE)
        return index

    return _locked(ring, do)


def _free_entry(ring: Ring) -> int:
    """A FREE entry, else the entry of a consumer that was stopped for good."""
    for wanted in (L.FREE, L.DETACHED):
        for i in range(L.MAX_CONSUMERS):
            if ring.entry(i, L.C_STATE) == wanted:
                return i
    raise DAQError(f"ring {ring.name} has no free consumer entry (at most {L.MAX_CONSUMERS})")


def reactivate(ring: Ring, name: str) -> int | None:
    """The consumer's side, when it (re)starts: its EVICTED or DETACHED entry becomes ACTIVE at
    ``write_seq``, what went by meanwhile added to its ``missed`` count. None: it has no entry."""

    def do() -> int:
        found = find(ring, name)
        if found is None:
            return -1
        if ring.entry(found, L.C_STATE) in (L.EVICTED, L.DETACHED):
            write = ring.write_seq
            missed = ring.entry(found, L.C_MISSED) + max(0, write - ring.entry(found, L.C_CURSOR))
            ring.set_entry(found, L.C_MISSED, missed)
            ring.set_entry(found, L.C_CURSOR, write)
            ring.set_entry(found, L.C_STATE, L.ACTIVE)
        ring.set_entry(found, L.C_HEARTBEAT, time.monotonic_ns())
        return found

    index = _locked(ring, do)
    return None if index < 0 else index


def rejoin(ring: Ring, name: str) -> int:
    """An evicted consumer that still runs becomes active again at the oldest payload still held.

    What was overwritten while it was evicted is added to its ``missed`` count.
    """

    def do() -> int:
        index = find(ring, name)
        if index is None:
            raise DAQError(f"ring {ring.name} has no entry for {name}")
        if ring.entry(index, L.C_STATE) != L.ACTIVE:
            cursor = ring.entry(index, L.C_CURSOR)
            oldest = max(cursor, ring.write_seq - ring.slot_count)
            ring.set_entry(index, L.C_MISSED, ring.entry(index, L.C_MISSED) + oldest - cursor)
            ring.set_entry(index, L.C_CURSOR, oldest)
            ring.set_entry(index, L.C_HEARTBEAT, time.monotonic_ns())
            ring.set_entry(index, L.C_STATE, L.ACTIVE)
        return index

    return _locked(ring, do)


def detach(ring: Ring, name: str) -> None:
    """A consumer that a person stopped (or that was removed) stops holding the producer back.

    Its entry stays (DETACHED, with its cursor) so that a producer does not register it
    again, and so that, started again, it counts what went by meanwhile.
    """

    def do() -> int:
        found = find(ring, name)
        if found is not None:
            ring.set_entry(found, L.C_STATE, L.DETACHED)
        return 0

    _locked(ring, do)


def evict_stale(ring: Ring, older_than_ns: int) -> list[str]:
    """Evict consumers without a heartbeat for ``older_than_ns``; returns their names."""
    now = time.monotonic_ns()
    evicted: list[str] = []

    def do() -> int:
        for i in ring.active_consumers():
            if now - ring.entry(i, L.C_HEARTBEAT) > older_than_ns:
                ring.set_entry(i, L.C_STATE, L.EVICTED)
                evicted.append(ring.consumer_name(i))
        return 0

    _locked(ring, do)
    return evicted
