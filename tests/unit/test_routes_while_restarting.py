"""A store that restarts stays in the routes: its producers' payloads wait in the ring for it,
and only inline messages (which would reach nobody) are counted as unrouted. A running store
whose writes fail is shown ``stalled`` with its error."""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

from enrgdaq.cli.status import render_table
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.reconcile import routes_of, stores_not_running
from enrgdaq.control.registry import JobRecord
from enrgdaq.control.status import job_status
from enrgdaq.control.status_document import status_document
from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.outbox import ROUTES_GRACE_SECONDS
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.models import SupervisorInfo
from tests.unit.conftest import ProxyUrls


def store(uid: str, state: JobState, **fields: Any) -> JobRecord:
    return JobRecord(unique_id=uid, daq_job_type="DAQJobStoreCSV", is_store=True, state=state, **fields)


def test_routes_name_every_wanted_store_and_say_which_do_not_run_now() -> None:
    records = [
        store("running", JobState.RUNNING),
        store("restarting", JobState.RESTART_SCHEDULED),
        store("waiting", JobState.WAITING),
        store("starting", JobState.STARTING),
        store("stopped", JobState.STOPPED, desired="stop"),
        store("stopping", JobState.RUNNING, desired="stop"),
        store("crashed", JobState.CRASHED),
        store("removed", JobState.RUNNING, removed=True),
        JobRecord(unique_id="producer", daq_job_type="DAQJobTest", state=JobState.RUNNING),
    ]

    assert routes_of(records) == {"DAQJobStoreCSV": ["running", "restarting", "waiting", "starting"]}
    assert stores_not_running(records) == ["restarting", "waiting", "starting"]


class DAQJobProducer(DAQJob):
    config_type = StorableDAQJobConfig


STORE_CONFIG = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))


def producer(proxy: ProxyUrls, uid: str, use_shm: bool) -> DAQJobProducer:
    job = DAQJobProducer(
        StorableDAQJobConfig(
            daq_job_type="DAQJobProducer",
            daq_job_unique_id=uid,
            store_config=STORE_CONFIG,
            use_shm_when_possible=use_shm,
        ),
        supervisor_info=SupervisorInfo(supervisor_id="unit"),
        zmq_xpub_url=proxy.xpub_url,
        zmq_xsub_url=proxy.xsub_url,
    )
    job._started_monotonic -= ROUTES_GRACE_SECONDS  # its start-up hold for the stores is over
    return job


def test_payloads_for_a_restarting_store_wait_in_the_ring_and_inline_ones_are_counted(
    proxy: ProxyUrls, tmp_path: Any
) -> None:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    ring_job = producer(proxy, "camera", use_shm=True)
    ring_job.configure_data_plane(DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 4096, slot_bytes=4096))
    inline_job = producer(proxy, "sensor", use_shm=False)
    try:
        for job in (ring_job, inline_job):
            job.routes = {"DAQJobStoreCSV": ["store_csv"]}
            job.stores_not_running = frozenset({"store_csv"})  # restarting
            for n in range(3):
                job._put_message_out(
                    DAQJobMessageStorePyArrow(store_config=STORE_CONFIG, table=pa.table({"n": [n]}))
                )

        writer = ring_job._ring_writer
        assert writer is not None, "no ring: the payloads did not wait for the restarting store"
        index = writer.ring.find_consumer("store_csv")
        assert index is not None and writer.ring.cursor(index) == 0 and writer.ring.write_seq == 3
        assert ring_job.counters.unrouted == 0
        assert inline_job.counters.unrouted == 3, "inline messages sent to nobody were not counted"

        inline_job.routes = {"DAQJobStoreCSV": ["store_csv"]}  # it runs again
        inline_job.stores_not_running = frozenset()
        inline_job._put_message_out(
            DAQJobMessageStorePyArrow(store_config=STORE_CONFIG, table=pa.table({"n": [3]}))
        )
        assert inline_job.counters.unrouted == 3
    finally:
        ring_job.free()
        inline_job.free()


def test_a_running_store_that_cannot_write_is_shown_stalled_with_its_error() -> None:
    stats = {"write_failing": 1, "write_errors": 4, "last_error": "NotADirectoryError: [Errno 20] out/x.csv"}
    record = JobRecord(
        unique_id="store_csv",
        daq_job_type="DAQJobStoreCSV",
        state=JobState.RUNNING,
        is_store=True,
        stats=json.dumps(stats),
    )

    shown = job_status(record)
    assert shown.state == "stalled" and shown.error == stats["last_error"]

    doc = status_document("lab", [shown], True, {})
    table = render_table(json.loads(json.dumps(doc)))
    assert "stalled" in table
    assert "store_csv: NotADirectoryError: [Errno 20] out/x.csv" in table
    assert "data: store_csv: cannot write (4 failed attempts so far)" in table

    recovered = {**stats, "write_failing": 0}
    record.stats = json.dumps(recovered)
    assert job_status(record).state == "running" and job_status(record).error is None


def test_bridges_are_in_the_routes_as_consumers_of_every_store_payload() -> None:
    records = [
        store("store_csv", JobState.RUNNING),
        JobRecord(unique_id="to_b", daq_job_type="DAQJobRemote", state=JobState.RUNNING),
        JobRecord(unique_id="proxy", daq_job_type="DAQJobRemoteProxy", state=JobState.RESTART_SCHEDULED),
        JobRecord(unique_id="gone", daq_job_type="DAQJobRemote", state=JobState.STOPPED, desired="stop"),
    ]

    assert routes_of(records) == {"DAQJobStoreCSV": ["store_csv"], "*": ["to_b", "proxy"]}
    assert stores_not_running(records) == ["proxy"]
