"""A job's own ring policy: a producer that may lose payloads says so in its TOML, and its drops
are counted and logged, never silent."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.models import SupervisorInfo
from tests.unit.conftest import ProxyUrls

SLOTS = 4


class DAQJobCamera(DAQJob):
    config_type = StorableDAQJobConfig


def camera(proxy: ProxyUrls, run_dir: str, **ring: object) -> DAQJobCamera:
    store = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="frames.csv"))
    config = StorableDAQJobConfig(
        daq_job_type="DAQJobCamera", daq_job_unique_id="camera", store_config=store, **ring
    )
    job = DAQJobCamera(
        config,
        supervisor_info=SupervisorInfo(supervisor_id="unit"),
        zmq_xpub_url=proxy.xpub_url,
        zmq_xsub_url=proxy.xsub_url,
    )
    # The supervisor's settings say block and wait a minute: the job's own keys must win.
    job.configure_data_plane(
        DataPlaneSettings(
            run_dir=run_dir, ring_bytes=SLOTS * 4096, slot_bytes=4096, policy="block", block_timeout_s=60.0
        )
    )
    return job


def frame(job: DAQJobCamera, number: int) -> DAQJobMessageStorePyArrow:
    message = DAQJobMessageStorePyArrow(
        store_config=job.config.store_config, table=pa.table({"frame": [number]})
    )
    message.daq_job_info = job.info
    message.pre_send()
    return message


def test_a_job_with_ring_policy_drop_counts_and_logs_what_a_stuck_store_misses(
    proxy: ProxyUrls, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    job = camera(proxy, str(tmp_path), ring_policy="drop", ring_block_timeout_seconds=0.01)
    try:
        with caplog.at_level(logging.WARNING):
            # The store "store_csv" is registered and never reads: SLOTS fit, the rest are dropped.
            taken = [job._send_through_ring(frame(job, n), ["store_csv"]) for n in range(SLOTS + 2)]

        assert taken == [True] * (SLOTS + 2)  # dropped payloads are not sent inline either
        assert job.counters.dropped == 2
        assert job.data_plane_stats()["ring_dropped"] == 2
        assert "2 payload(s) dropped" not in caplog.text  # logged at 1, 10, 100, then every 1000
        assert "ring_policy drop: 1 payload(s) dropped so far" in caplog.text
        assert "store_csv" in caplog.text  # names the store that held it back
    finally:
        job.free()
