"""Ring names from the wire are not trusted: only a plain ``ring-<id>`` file of the run directory is opened.

A real ring outside the run directory, in which the store even has an entry, is
the bait: a store that followed ``../elsewhere/ring-bait`` or its absolute path
would map it and hand on its payload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pytest
import zmq

from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage, DAQJobMessageRingNotify
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigMemory,
)
from enrgdaq.daq.topics import Topic, wire
from enrgdaq.data import layout as L
from enrgdaq.data.reader import RingReader
from enrgdaq.data.ring import Ring
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from enrgdaq.errors import ConfigError
from enrgdaq.message.wire import Encoder
from tests.harness.waiting import wait_for
from tests.unit.conftest import ProxyUrls

MEMORY = DAQJobStoreConfig(memory=DAQJobStoreConfigMemory())
STORE_ID = "keeper"


class RecordingStore(DAQJobStore):
    """A store that keeps the tags of what it is handed."""

    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigMemory]

    def __init__(self, config: DAQJobConfig, **kwargs: object) -> None:
        self.tags: list[str | None] = []
        super().__init__(config, **kwargs)

    def handle_message(self, message: DAQJobMessage) -> bool:
        self.tags.append(getattr(message, "tag", None))
        return True


@dataclass
class Dirs:
    run: str
    bait: str
    """A ring outside ``run`` with an entry for the store, holding one payload tagged ``bait``."""
    heartbeat: int
    """The store's heartbeat in the bait ring when the ring was made (the store never ran)."""

    @property
    def bad_names(self) -> list[str]:
        return ["../../etc/passwd", "/etc/passwd", os.path.relpath(self.bait, self.run), self.bait]


@pytest.fixture
def dirs(tmp_path) -> Dirs:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    settings = DataPlaneSettings(run_dir=str(elsewhere), ring_bytes=4 * 4096, slot_bytes=4096)
    writer = RingWriter("bait", settings)
    writer.ensure_consumers([STORE_ID])
    writer.write(DAQJobMessageStorePyArrow(store_config=MEMORY, table=pa.table({"n": [1]}), tag="bait"))
    index = writer.ring.find_consumer(STORE_ID)
    assert index is not None
    heartbeat = writer.ring.entry(index, L.C_HEARTBEAT)
    writer.close()  # nothing of it stays mapped in this process
    return Dirs(run=str(run), bait=writer.ring.path, heartbeat=heartbeat)


def mapped(path: str) -> bool:
    with open("/proc/self/maps") as maps:
        return any(line.rstrip("\n").endswith(path) for line in maps)


def untouched(dirs: Dirs) -> bool:
    """The store's entry in the bait ring was never read from nor heartbeat by the store."""
    ring = Ring.attach(dirs.bait)
    try:
        index = ring.find_consumer(STORE_ID)
        assert index is not None
        return (ring.cursor(index), ring.entry(index, L.C_HEARTBEAT)) == (0, dirs.heartbeat)
    finally:
        ring.close()


@pytest.fixture
def store(proxy: ProxyUrls, dirs: Dirs) -> Iterator[RecordingStore]:
    job = RecordingStore(
        DAQJobConfig(daq_job_type="RecordingStore", daq_job_unique_id=STORE_ID),
        zmq_xpub_url=proxy.xpub_url,
        zmq_xsub_url=proxy.xsub_url,
    )
    job.configure_data_plane(DataPlaneSettings(run_dir=dirs.run))
    yield job
    job.free()


@pytest.fixture
def forger(proxy: ProxyUrls) -> Iterator[zmq.Socket]:
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.connect(proxy.xsub_url)
    yield sock
    sock.close(linger=0)
    context.term()


def test_a_forged_notify_naming_a_path_is_counted_as_malformed_and_nothing_outside_is_opened(
    store: RecordingStore, forger: zmq.Socket, dirs: Dirs
) -> None:
    topic = wire(Topic.store("RecordingStore"))

    def send(message: DAQJobMessage) -> None:
        forger.send_multipart([topic, *Encoder().encode(message)])

    def marker(tag: str) -> DAQJobMessageStorePyArrow:
        return DAQJobMessageStorePyArrow(store_config=MEMORY, table=pa.table({"n": [0]}), tag=tag)

    def took(tag: str) -> bool:
        store._process_inbound(timeout_ms=20)
        return tag in store.tags

    wait_for(lambda: send(marker("warm-up")) or took("warm-up"), 10, "the forger's path to the store")
    malformed_before = store.message_plane.malformed_count
    for name in dirs.bad_names:
        send(DAQJobMessageRingNotify(ring=name, seq=1))
    send(marker("after"))  # the same socket: it arrives after the forged notifies
    wait_for(lambda: took("after"), 10, "the message sent after the forged notifies")

    assert store.message_plane.malformed_count - malformed_before == len(dirs.bad_names)
    assert "bait" not in store.tags
    assert store._rings is not None and store._rings.trackers == {}
    assert not mapped(dirs.bait)
    assert untouched(dirs)


def test_a_reader_refuses_names_that_are_no_ring_file_of_its_directory_and_counts_them(dirs: Dirs) -> None:
    reader = RingReader(STORE_ID, dirs.run)
    os.symlink(dirs.bait, os.path.join(dirs.run, "ring-link"))  # a ring name, but a way out
    try:
        drained = [reader.drain(name) for name in [*dirs.bad_names, "ring-link"]]
        reader.scan()

        assert drained == [[]] * 5
        assert reader.trackers == {}
        assert reader.bad_names == 6  # the five, and the link again when the directory was scanned
        assert not mapped(dirs.bait)
        assert untouched(dirs)
    finally:
        reader.close()


def test_a_producer_whose_id_cannot_name_a_ring_file_is_refused(dirs: Dirs) -> None:
    with pytest.raises(ConfigError, match="cannot name a ring"):
        RingWriter("../escape", DataPlaneSettings(run_dir=dirs.run, ring_bytes=4 * 4096, slot_bytes=4096))
    assert os.listdir(dirs.run) == []
