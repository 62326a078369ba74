"""Tabular store messages (rows in their header) wait in the ring like tables do: what a producer
sends while its store restarts reaches the store when it is back, every row once.

Real parts: a real proxy, a real producer job and a real CSV store job (in this
process), a real ring file; the store is closed and a new one opened in its place.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from typing import Any

import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.store.models import (
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.models import SupervisorInfo
from tests.harness.waiting import wait_for
from tests.unit.conftest import ProxyUrls

KEYS = ["n", "i", "label", "value"]
ROWS_PER_MESSAGE = 3
SUPERVISOR = SupervisorInfo(supervisor_id="unit")


class DAQJobRows(DAQJob):
    config_type = StorableDAQJobConfig


def rows_of(n: int) -> list[list[Any]]:
    return [[n, i, f"row {n}.{i}, with a comma", n + i / 8] for i in range(ROWS_PER_MESSAGE)]


def as_text(rows: list[list[Any]]) -> list[list[str]]:
    return [[str(value) for value in row] for row in rows]


class Setup:
    def __init__(self, proxy: ProxyUrls, tmp_path: Any) -> None:
        self.proxy = proxy
        self.out_dir = str(tmp_path / "out")
        run_dir = str(tmp_path / "run")
        os.makedirs(run_dir)
        self.settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=64 * 4096, slot_bytes=4096)
        self.store_config = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
        self.jobs: list[DAQJob] = []

    def producer(self) -> DAQJobRows:
        config = StorableDAQJobConfig(
            daq_job_type="DAQJobRows", daq_job_unique_id="rows", store_config=self.store_config
        )
        return self._started(DAQJobRows(config, **self._plane()))

    def store(self) -> DAQJobStoreCSV:
        config = DAQJobStoreCSVConfig(
            daq_job_type="DAQJobStoreCSV", daq_job_unique_id="store_csv", out_dir=self.out_dir
        )
        return self._started(DAQJobStoreCSV(config, **self._plane()))

    def send(self, producer: DAQJobRows, n: int) -> None:
        producer._put_message_out(
            DAQJobMessageStoreTabular(store_config=self.store_config, keys=KEYS, data=rows_of(n))
        )

    def rows_on_disk(self) -> list[list[str]]:
        path = os.path.join(self.out_dir, "rows.csv")
        if not os.path.exists(path):
            return []
        with open(path, newline="") as f:
            return [row for row in csv.reader(f) if row != KEYS]

    def _plane(self) -> dict[str, Any]:
        return {
            "supervisor_info": SUPERVISOR,
            "zmq_xpub_url": self.proxy.xpub_url,
            "zmq_xsub_url": self.proxy.xsub_url,
        }

    def _started(self, job: Any) -> Any:
        job.configure_data_plane(self.settings)
        self.jobs.append(job)
        return job

    def close(self) -> None:
        for job in self.jobs:
            job.free()


@pytest.fixture
def setup(proxy: ProxyUrls, tmp_path: Any) -> Iterator[Setup]:
    made = Setup(proxy, tmp_path)
    yield made
    made.close()


def run_store_until(setup: Setup, store: DAQJobStoreCSV, rows: int) -> None:
    """One turn of the store's loop at a time, until ``rows`` rows are on disk."""

    def turn() -> bool:
        store._poll_rings()
        store._process_inbound(timeout_ms=0)
        store.store_loop()
        store._release_flushed()
        return len(setup.rows_on_disk()) >= rows

    wait_for(turn, 15, f"{rows} rows in the CSV file")


def test_rows_sent_while_the_store_restarts_wait_in_the_ring_and_arrive_once(setup: Setup) -> None:
    producer = setup.producer()
    producer.routes = {"DAQJobStoreCSV": ["store_csv"]}
    store = setup.store()
    for n in range(10):
        setup.send(producer, n)
    run_store_until(setup, store, 10 * ROWS_PER_MESSAGE)

    store.free()  # the store stops; the supervisor will start it again
    producer.routes = {"DAQJobStoreCSV": ["store_csv"]}
    producer.stores_not_running = frozenset({"store_csv"})
    for n in range(10, 25):
        setup.send(producer, n)  # nobody reads: an inline message would be lost
    ring_stats = producer.data_plane_stats()
    store = setup.store()  # running again, reading on from its cursor
    producer.routes = {"DAQJobStoreCSV": ["store_csv"]}
    producer.stores_not_running = frozenset()
    run_store_until(setup, store, 25 * ROWS_PER_MESSAGE)

    assert ring_stats["ring_write_seq"] == 25
    assert ring_stats["ring_occupancy"] == 15  # the 15 waited in the ring for the store
    assert setup.rows_on_disk() == [row for n in range(25) for row in as_text(rows_of(n))]
    assert (producer.counters.unrouted, producer.counters.inline_large) == (0, 0)


def test_a_tabular_message_larger_than_a_slot_still_goes_inline(setup: Setup) -> None:
    producer = setup.producer()
    producer.routes = {"DAQJobStoreCSV": ["store_csv"]}
    store = setup.store()
    big = [[n, 0, "x" * 100, 0.0] for n in range(100)]  # over 10 KB of rows: more than a 4 KiB slot
    producer._put_message_out(DAQJobMessageStoreTabular(store_config=setup.store_config, keys=KEYS, data=big))
    setup.send(producer, 0)
    run_store_until(setup, store, len(big) + ROWS_PER_MESSAGE)

    assert producer.counters.inline_large == 1
    assert producer.data_plane_stats()["ring_write_seq"] == 1  # the small one went into the ring
    assert sorted(setup.rows_on_disk()) == sorted(as_text(big) + as_text(rows_of(0)))
