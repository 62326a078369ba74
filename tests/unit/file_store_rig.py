"""What the file store tests share: a real ring in a temp directory, a store of each kind driven by
its loop's own steps, and real write failures (the output directory replaced by a regular file:
ENOTDIR, also for root)."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.types import get_daq_job_class
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from tests.harness.waiting import wait_for

STORE_ID = "store"


@contextlib.contextmanager
def ring(
    run_dir: str, slots: int = 16, slot_bytes: int = 16384
) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    """A producer's ring with the store ``STORE_ID`` registered as its consumer."""
    os.makedirs(run_dir, exist_ok=True)
    settings = DataPlaneSettings(
        run_dir=run_dir, ring_bytes=slots * slot_bytes, slot_bytes=slot_bytes, block_timeout_s=0.05
    )
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE_ID])
    try:
        yield settings, writer
    finally:
        writer.close()


def store(job_type: str, settings: DataPlaneSettings | None, **config: Any) -> Any:
    """A store job of ``job_type`` with ``config`` (its TOML fields), attached to the ring."""
    cls = get_daq_job_class(job_type)
    job = cls(
        msgspec.convert({"daq_job_type": job_type, "daq_job_unique_id": STORE_ID, **config}, cls.config_type)
    )
    if settings is not None:
        job.configure_data_plane(settings)
    return job


def step(job: DAQJobStore) -> None:
    """One turn of the store's loop without the message plane: take from the rings, write out;
    while failing, retry once the backoff is over."""
    if job._writes.failing:
        if job._writes.seconds_left() <= 0:
            job._retry_writes()
        return
    job._poll_rings()
    job._write_out()


def released(writer: RingWriter) -> int:
    """How many payloads the store has given back (its cursor in the ring)."""
    gc.collect()
    return writer.ring.cursor(writer.ring.find_consumer(STORE_ID))


@contextlib.contextmanager
def output_dir_replaced_by_a_file(out_dir: str) -> Iterator[None]:
    """Writes below ``out_dir`` fail (ENOTDIR), also for root; afterwards the directory is back."""
    aside = out_dir + ".aside"
    os.rename(out_dir, aside)
    with open(out_dir, "w") as f:
        f.write("not a directory\n")
    try:
        yield
    finally:
        os.unlink(out_dir)
        os.rename(aside, out_dir)


@contextlib.contextmanager
def moved_away(out_dir: str) -> Iterator[None]:
    """Nothing at ``out_dir`` (a disk not mounted yet), then the directory back."""
    os.rename(out_dir, out_dir + ".away")
    try:
        yield
    finally:
        os.rename(out_dir + ".away", out_dir)


def recovered_after(
    job: DAQJobStore,
    away: contextlib.AbstractContextManager[None],
    says: str,
    meanwhile: Callable[[], None] = lambda: None,
) -> RingPositions:
    """The store's start-up check of its last write (``_recovered``, as ``start`` runs it) begun
    while ``away`` keeps its output directory from it: the store must stall with ``says`` in its
    error (``meanwhile`` looks at it then) and finish once the directory is back. Its result."""
    result: list[RingPositions] = []
    starting = threading.Thread(target=lambda: result.append(job._recovered()), daemon=True)
    with away:
        starting.start()
        wait_for(lambda: job.counters.write_failing == 1, 10, "the store stalled")
        assert says in str(job.counters.last_error), job.counters.last_error
        meanwhile()
    starting.join(15)
    assert not starting.is_alive() and job.counters.write_failing == 0, "still stalled"
    return result[0]
