"""The DAQJob API as the original documented it, against a real proxy and a real CSV store.

A job subclasses ``DAQJob``, sets ``config_type``, loops in ``start()`` until
``self._has_been_freed`` and publishes with ``self._put_message_out``.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage, DAQJobMessageStop
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.daq.topics import Topic
from enrgdaq.models import SupervisorInfo
from tests.harness.waiting import wait_for
from tests.unit.conftest import ProxyUrls

SUPERVISOR = SupervisorInfo(supervisor_id="unit")


# -- a job written the way the original documented it ------------------------------------------
class DAQJobCountConfig(StorableDAQJobConfig, kw_only=True):
    messages: int = 5
    rows_per_message: int = 2


class DAQJobCount(DAQJob):
    """Sends ``messages`` tables of rows ``seq, label``, then idles until freed."""

    config_type = DAQJobCountConfig

    def start(self) -> None:
        seq = 0
        while not self._has_been_freed:
            if seq < self.config.messages * self.config.rows_per_message:
                rows = range(seq, seq + self.config.rows_per_message)
                table = pa.table({"seq": list(rows), "label": [f"row {i}" for i in rows]})
                self._put_message_out(
                    DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=table)
                )
                seq += self.config.rows_per_message
            else:
                self.sleep_until(math.inf)  # all sent: idle until stopped


class DAQJobMessageGreeting(DAQJobMessage, kw_only=True):
    """A message type of the job's own, as a lab would define one."""

    text: str


class DAQJobListener(DAQJob):
    """Keeps what it is sent; idles in start()."""

    config_type = DAQJobConfig
    allowed_message_in_types = [DAQJobMessageGreeting]
    topics_to_subscribe = ["lab.greetings"]

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.greetings: list[str] = []

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageGreeting)
        self.greetings.append(message.text)
        return True

    def start(self) -> None:
        self.sleep_until(math.inf)


# -- running jobs in threads ------------------------------------------------------------------
class JobThread:
    """``start()`` of one job on its own thread; the job is built there too unless given."""

    def __init__(self, job: DAQJob | Callable[[], DAQJob]) -> None:
        self.job: DAQJob | None = job if isinstance(job, DAQJob) else None
        self._make = None if isinstance(job, DAQJob) else job
        self._built = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-under-test", daemon=True)

    def start(self) -> JobThread:
        self.thread.start()
        wait_for(self._built.is_set, 10, "the job to be built")
        assert self.job is not None, "building the job failed (see the thread's exception)"
        return self

    def _run(self) -> None:
        try:
            if self._make is not None:
                self.job = self._make()
        finally:
            self._built.set()
        assert self.job is not None
        self.job.start()

    def stop(self) -> None:
        """request_stop(), wait for start() to return, then free()."""
        if self.job is None:
            return
        self.job.request_stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "start() did not return after request_stop()"
        self.job.free()


@pytest.fixture
def threads() -> Iterator[list[JobThread]]:
    running: list[JobThread] = []
    yield running
    for job_thread in reversed(running):
        job_thread.stop()


def csv_store(proxy: ProxyUrls, out_dir: str) -> DAQJobStoreCSV:
    config = DAQJobStoreCSVConfig(
        daq_job_type="DAQJobStoreCSV", daq_job_unique_id="store_csv", out_dir=out_dir
    )
    return DAQJobStoreCSV(
        config, supervisor_info=SUPERVISOR, zmq_xpub_url=proxy.xpub_url, zmq_xsub_url=proxy.xsub_url
    )


def counter(proxy: ProxyUrls | None, file_path: str = "counts.csv", **fields: Any) -> DAQJobCount:
    config = DAQJobCountConfig(
        daq_job_type="DAQJobCount",
        daq_job_unique_id="counter",
        store_config=DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path=file_path)),
        **fields,
    )
    if proxy is None:
        return DAQJobCount(config, supervisor_info=SUPERVISOR)
    return DAQJobCount(
        config, supervisor_info=SUPERVISOR, zmq_xpub_url=proxy.xpub_url, zmq_xsub_url=proxy.xsub_url
    )


def read_csv(path: str) -> list[list[str]]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.reader(f))


def rows_reach(path: str, count: int) -> list[list[str]] | None:
    rows = read_csv(path)
    return rows if len(rows) >= count + 1 else None  # + header


# -- tests ----------------------------------------------------------------------------------------
class TestRowsToDisk:
    def test_a_custom_job_and_the_csv_store_in_threads_write_every_row_to_disk(
        self, proxy: ProxyUrls, tmp_path, threads: list[JobThread]
    ) -> None:
        out_dir = str(tmp_path / "out")
        store = JobThread(lambda: csv_store(proxy, out_dir))
        threads.append(store.start())
        producer = JobThread(counter(proxy, messages=5, rows_per_message=2))
        threads.append(producer.start())

        rows = wait_for(
            lambda: rows_reach(os.path.join(out_dir, "counts.csv"), 10), 10, "10 rows in counts.csv"
        )

        assert rows == [["seq", "label"], *([str(i), f"row {i}"] for i in range(10))]
        assert producer.job is not None and producer.job.counters.unrouted == 0
        assert store.job is not None and store.job.counters.processed == 5

    def test_request_stop_and_free_end_both_threads_and_close_their_sockets(
        self, proxy: ProxyUrls, tmp_path, threads: list[JobThread]
    ) -> None:
        out_dir = str(tmp_path / "out")
        store = JobThread(lambda: csv_store(proxy, out_dir)).start()
        producer = JobThread(counter(proxy, messages=1)).start()
        threads.extend([store, producer])
        wait_for(lambda: rows_reach(os.path.join(out_dir, "counts.csv"), 2), 10, "2 rows")

        producer.stop()
        store.stop()

        assert not producer.thread.is_alive() and not store.thread.is_alive()
        assert producer.job is not None and producer.job.message_plane is None
        assert store.job is not None and store.job.message_plane is None
        assert [t.name for t in threading.enumerate() if t.name.startswith("receive-")] == []

    def test_a_stop_message_on_a_jobs_own_topic_ends_its_start(
        self, proxy: ProxyUrls, tmp_path, threads: list[JobThread]
    ) -> None:
        listener = JobThread(
            DAQJobListener(
                DAQJobConfig(daq_job_type="DAQJobListener", daq_job_unique_id="listener"),
                supervisor_info=SUPERVISOR,
                zmq_xpub_url=proxy.xpub_url,
                zmq_xsub_url=proxy.xsub_url,
            )
        )
        threads.append(listener.start())
        sender = counter(proxy)
        try:
            sender._put_message_out(
                DAQJobMessageStop(reason="test over", topics={Topic.daq_job_direct("listener")})
            )

            listener.thread.join(10)
            assert not listener.thread.is_alive()
        finally:
            sender.free()

    def test_a_message_type_of_the_jobs_own_reaches_handle_message_via_topics_to_subscribe(
        self, proxy: ProxyUrls, threads: list[JobThread]
    ) -> None:
        listener_job = DAQJobListener(
            DAQJobConfig(daq_job_type="DAQJobListener", daq_job_unique_id="listener"),
            supervisor_info=SUPERVISOR,
            zmq_xpub_url=proxy.xpub_url,
            zmq_xsub_url=proxy.xsub_url,
        )
        threads.append(JobThread(listener_job).start())
        sender = counter(proxy)
        try:
            sender._put_message_out(DAQJobMessageGreeting(text="hello", topics={"lab.greetings.room1"}))

            wait_for(lambda: listener_job.greetings == ["hello"], 10, "the greeting")
        finally:
            sender.free()


class TestRejectedMessages:
    def test_raw_bytes_sent_to_the_csv_store_are_unsupported_counted_and_said_once_not_a_crash(
        self, proxy: ProxyUrls, tmp_path, threads: list[JobThread], caplog: pytest.LogCaptureFixture
    ) -> None:
        out_dir = str(tmp_path / "out")
        store = JobThread(lambda: csv_store(proxy, out_dir))
        threads.append(store.start())
        sender = counter(proxy, file_path="after.csv")
        store_config = sender.config.store_config
        try:
            sender._put_message_out(DAQJobMessageStoreRaw(store_config=store_config, data=b"\x00\x01"))
            sender._put_message_out(DAQJobMessageStoreRaw(store_config=store_config, data=b"\x02"))
            sender._put_message_out(
                DAQJobMessageStorePyArrow(store_config=store_config, table=pa.table({"after": [1]}))
            )

            wait_for(
                lambda: rows_reach(os.path.join(out_dir, "after.csv"), 1),
                10,
                "the row sent after the raw bytes",
            )
        finally:
            sender.free()

        assert store.job is not None
        assert store.job.counters.unsupported == 2
        assert (store.job.counters.rejected, store.job.counters.failed) == (0, 0)
        said = [r for r in caplog.records if "cannot store DAQJobMessageStoreRaw" in r.getMessage()]
        assert len(said) == 1, "said once per producer and kind"
        assert "DAQJobStoreCSV stores DAQJobMessageStorePyArrow" in said[0].getMessage()
        assert store.thread.is_alive()
        assert sorted(os.listdir(out_dir)) == ["after.csv"]


class TestPerInstanceLists:
    def test_topics_to_subscribe_are_per_instance(self) -> None:
        one = DAQJobListener(DAQJobConfig(daq_job_type="DAQJobListener", topics_to_subscribe=["from.config"]))
        two = DAQJobListener(DAQJobConfig(daq_job_type="DAQJobListener"))

        one.topics_to_subscribe.append("added.later")

        assert one.topics_to_subscribe == ["lab.greetings", "from.config", "added.later"]
        assert two.topics_to_subscribe == ["lab.greetings"]
        assert DAQJobListener.topics_to_subscribe == ["lab.greetings"]

    def test_allowed_message_in_types_are_per_instance(self) -> None:
        config = DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV")
        one, two = DAQJobStoreCSV(config), DAQJobStoreCSV(config)

        one.allowed_message_in_types.append(DAQJobMessageStoreRaw)
        one.allowed_message_in_types.remove(DAQJobMessageStoreTabular)

        assert two.allowed_message_in_types == [DAQJobMessageStorePyArrow, DAQJobMessageStoreTabular]
        assert DAQJobStoreCSV.allowed_message_in_types == [
            DAQJobMessageStorePyArrow,
            DAQJobMessageStoreTabular,
        ]

    def test_without_a_proxy_put_message_out_collects_messages_in_message_out(self) -> None:
        job = counter(None)
        message = DAQJobMessageStorePyArrow(store_config=job.config.store_config, table=pa.table({"a": [1]}))

        job._put_message_out(message)

        assert job.message_out == [message]
        assert message.topics == {"store.DAQJobStoreCSV"}
        assert message.daq_job_info is job.info


def test_a_store_built_on_one_thread_and_started_on_another_announces_itself_promptly(
    proxy: ProxyUrls, tmp_path, threads: list[JobThread]
) -> None:
    producer = counter(proxy, messages=0)  # receives the store's announcement
    try:
        store = JobThread(csv_store(proxy, str(tmp_path / "out")))  # built here, started there
        threads.append(store.start())

        wait_for(lambda: "DAQJobStoreCSV" in (producer.routes or {}), 2, "the store's announcement")
    finally:
        producer.free()
