"""A store message that no running store takes is counted (``unrouted``) and logged; one that a
store of one of its classes takes is not, even when another class it names has no store."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.outbox import ROUTES_GRACE_SECONDS
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    DAQJobStoreConfigMemory,
    StorableDAQJobConfig,
)
from enrgdaq.models import SupervisorInfo
from tests.unit.conftest import ProxyUrls


class DAQJobCounter(DAQJob):
    config_type = StorableDAQJobConfig


def test_only_messages_that_no_store_takes_are_unrouted(
    proxy: ProxyUrls, caplog: pytest.LogCaptureFixture
) -> None:
    store_config = DAQJobStoreConfig(
        csv=DAQJobStoreConfigCSV(file_path="c.csv"), memory=DAQJobStoreConfigMemory()
    )
    job = DAQJobCounter(
        StorableDAQJobConfig(
            daq_job_type="DAQJobCounter", daq_job_unique_id="counter", store_config=store_config
        ),
        supervisor_info=SupervisorInfo(supervisor_id="unit"),
        zmq_xpub_url=proxy.xpub_url,
        zmq_xsub_url=proxy.xsub_url,
    )
    job._started_monotonic -= ROUTES_GRACE_SECONDS  # its start-up hold for the stores is over
    try:
        with caplog.at_level(logging.WARNING):
            job.routes = {"DAQJobStoreCSV": ["store_csv"]}  # a CSV store runs, no memory store
            for _ in range(3):
                job._put_message_out(
                    DAQJobMessageStorePyArrow(store_config=store_config, table=pa.table({"x": [1]}))
                )
            assert job.counters.unrouted == 0

            job.routes = {}  # no store at all
            for _ in range(2):
                job._put_message_out(
                    DAQJobMessageStorePyArrow(store_config=store_config, table=pa.table({"x": [1]}))
                )
        assert job.counters.unrouted == 2
        assert "no running store for DAQJobStoreCSV, DAQJobStoreMemory: 1 message(s)" in caplog.text
    finally:
        job.free()
