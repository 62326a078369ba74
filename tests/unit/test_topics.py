"""Topics through a real proxy: exact subscriptions do not leak into longer names, prefixes do match."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from enrgdaq.daq import topics
from enrgdaq.daq.models import DAQJobMessageStop
from enrgdaq.daq.topics import Topic
from enrgdaq.message.wire import Decoder, Encoder
from tests.harness.waiting import wait_for
from tests.unit.conftest import ProxyUrls


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    """A context whose sockets are all closed afterwards."""
    ctx = zmq.Context()
    opened: list[zmq.Socket] = []
    plain_socket = ctx.socket

    def socket(kind: int) -> zmq.Socket:
        sock = plain_socket(kind)
        opened.append(sock)
        return sock

    ctx.socket = socket  # type: ignore[method-assign]
    yield ctx
    for sock in opened:
        sock.close(linger=0)
    ctx.term()


def subscriber(context: zmq.Context, proxy: ProxyUrls, *subscriptions: bytes) -> zmq.Socket:
    sock = context.socket(zmq.SUB)
    sock.connect(proxy.xpub_url)
    for subscription in subscriptions:
        sock.setsockopt(zmq.SUBSCRIBE, subscription)
    return sock


def publisher(context: zmq.Context, proxy: ProxyUrls) -> zmq.Socket:
    sock = context.socket(zmq.PUB)
    sock.connect(proxy.xsub_url)
    return sock


def send(pub: zmq.Socket, topic: str, reason: str) -> None:
    pub.send_multipart([topics.wire(topic), *Encoder().encode(DAQJobMessageStop(reason=reason))])


class Inbox:
    """Everything one SUB socket received, as (topic, reason) pairs."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.received: list[tuple[str, str]] = []
        self._decoder = Decoder()

    def pump(self, timeout_ms: int = 20) -> list[tuple[str, str]]:
        if self.sock.poll(timeout_ms):
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = self._decoder.decode(frames[1:])
                self.received.append((topics.from_wire(frames[0]), message.reason))
        return self.received

    def reasons(self) -> list[str]:
        return [reason for _topic, reason in self.received]

    def topics(self) -> set[str]:
        return {topic for topic, _reason in self.received}


def wait_subscribed(pub: zmq.Socket, inbox: Inbox, topic: str) -> None:
    """Send probes on ``topic`` until one arrives: the proxy has the subscription, the pipe is up."""

    def probe_arrived() -> bool:
        send(pub, topic, "probe")
        return "probe" in inbox.reasons()

    wait_for(lambda: probe_arrived() or "probe" in inbox.pump(), 10, f"a probe on {topic}")


def receive_until(inbox: Inbox, reason: str) -> None:
    wait_for(lambda: reason in [r for _t, r in inbox.pump()], 10, f"message {reason!r}")


class TestWireNames:
    def test_an_exact_subscription_is_not_a_prefix_of_a_longer_topic(self) -> None:
        assert not topics.wire("daq_job.job10").startswith(topics.exact("daq_job.job1"))
        assert topics.wire("daq_job.job1").startswith(topics.exact("daq_job.job1"))

    def test_a_prefix_subscription_is_a_prefix_of_every_longer_topic(self) -> None:
        assert topics.wire("stats.supervisor.lab").startswith(topics.prefix("stats.supervisor"))

    def test_a_topic_read_back_from_the_wire_is_the_topic_that_was_sent(self) -> None:
        assert topics.from_wire(topics.wire("store.DAQJobStoreCSV")) == "store.DAQJobStoreCSV"


class TestThroughTheProxy:
    def test_an_exact_subscriber_of_job1_does_not_receive_messages_for_job10(
        self, context: zmq.Context, proxy: ProxyUrls
    ) -> None:
        job1 = Topic.daq_job_direct("job1")
        inbox = Inbox(subscriber(context, proxy, topics.exact(job1)))
        pub = publisher(context, proxy)
        wait_subscribed(pub, inbox, job1)

        send(pub, Topic.daq_job_direct("job10"), "for job10")
        send(pub, job1, "for job1")
        receive_until(inbox, "for job1")  # sent after the job10 one, on the same pipe

        assert "for job10" not in inbox.reasons()
        assert inbox.topics() == {job1}

    def test_an_exact_subscriber_of_job1_receives_every_message_for_job1(
        self, context: zmq.Context, proxy: ProxyUrls
    ) -> None:
        job1 = Topic.daq_job_direct("job1")
        inbox = Inbox(subscriber(context, proxy, topics.exact(job1)))
        pub = publisher(context, proxy)
        wait_subscribed(pub, inbox, job1)

        for i in range(20):
            send(pub, job1, f"m{i}")
        receive_until(inbox, "m19")

        assert [r for r in inbox.reasons() if r != "probe"] == [f"m{i}" for i in range(20)]

    def test_job1_and_job10_subscribers_each_receive_only_their_own_messages(
        self, context: zmq.Context, proxy: ProxyUrls
    ) -> None:
        job1, job10 = Topic.daq_job_direct("job1"), Topic.daq_job_direct("job10")
        inbox1 = Inbox(subscriber(context, proxy, topics.exact(job1)))
        inbox10 = Inbox(subscriber(context, proxy, topics.exact(job10)))
        pub = publisher(context, proxy)
        wait_subscribed(pub, inbox1, job1)
        wait_subscribed(pub, inbox10, job10)

        send(pub, job1, "one")
        send(pub, job10, "ten")
        send(pub, job1, "one-done")
        send(pub, job10, "ten-done")
        receive_until(inbox1, "one-done")
        receive_until(inbox10, "ten-done")

        assert inbox1.topics() == {job1} and "ten" not in inbox1.reasons()
        assert inbox10.topics() == {job10} and "one" not in inbox10.reasons()

    def test_a_prefix_subscriber_of_stats_supervisor_receives_stats_supervisor_lab(
        self, context: zmq.Context, proxy: ProxyUrls
    ) -> None:
        inbox = Inbox(subscriber(context, proxy, topics.prefix(Topic.stats_all())))
        pub = publisher(context, proxy)

        wait_subscribed(pub, inbox, Topic.stats_supervisor("lab"))

        assert inbox.topics() == {"stats.supervisor.lab"}

    def test_a_prefix_subscriber_receives_every_supervisor_but_not_other_names(
        self, context: zmq.Context, proxy: ProxyUrls
    ) -> None:
        inbox = Inbox(subscriber(context, proxy, topics.prefix(Topic.stats_all())))
        pub = publisher(context, proxy)
        wait_subscribed(pub, inbox, Topic.stats_supervisor("lab"))

        send(pub, Topic.stats_combined("lab"), "combined")
        send(pub, Topic.stats_supervisor("other-lab"), "other")
        send(pub, Topic.stats_supervisor("lab"), "done")
        receive_until(inbox, "done")

        assert "combined" not in inbox.reasons()
        assert ("stats.supervisor.other-lab", "other") in inbox.received
