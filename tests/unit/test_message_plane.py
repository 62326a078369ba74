"""A job's end of the message plane: proven publishers, and malformed frames counted and dropped."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable, Iterator

import msgspec
import pyarrow as pa
import pytest
import zmq

from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageStop
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.daq.topics import exact, wire
from enrgdaq.message.client import DAQJobMessageProbe, MessagePlaneClient, own_topic
from enrgdaq.message.sequence import GapCounter, Stamper
from enrgdaq.message.wire import Encoder
from tests.harness.waiting import wait_for
from tests.unit.conftest import ProxyUrls

ClientFactory = Callable[[str], MessagePlaneClient]


@pytest.fixture
def make_client(proxy: ProxyUrls) -> Iterator[ClientFactory]:
    """Clients subscribed to their own topic ``daq_job.<name>``; all closed afterwards."""
    made: list[MessagePlaneClient] = []

    def make(name: str) -> MessagePlaneClient:
        topic = own_topic(name)
        client = MessagePlaneClient(proxy.xpub_url, proxy.xsub_url, [exact(topic)], own_topic=topic)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def raw_pub(proxy: ProxyUrls) -> Iterator[zmq.Socket]:
    """A bare PUB socket on the proxy's XSUB side, for sending frames no client would send."""
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.connect(proxy.xsub_url)
    yield sock
    sock.close(linger=0)
    context.term()


def stop_message(reason: str, to: str) -> DAQJobMessageStop:
    return DAQJobMessageStop(reason=reason, topics={own_topic(to)})


def frames_of(message: DAQJobMessage, to: str) -> list[bytes]:
    return [wire(own_topic(to)), *Encoder().encode(message)]


def receive_until(
    client: MessagePlaneClient, done: Callable[[list[DAQJobMessage]], bool], what: str
) -> list[DAQJobMessage]:
    received: list[DAQJobMessage] = []

    def check() -> bool:
        received.extend(client.receive(20))
        return done(received)

    wait_for(check, 10, what)
    return received


def reasons(messages: list[DAQJobMessage]) -> list[str]:
    return [m.reason for m in messages if isinstance(m, DAQJobMessageStop)]


def warm_up(raw_pub: zmq.Socket, client: MessagePlaneClient, name: str) -> None:
    """Send on ``name``'s topic until something arrives: the raw PUB knows the subscription."""

    def arrived() -> bool:
        raw_pub.send_multipart(frames_of(stop_message("warm-up", name), name))
        return "warm-up" in reasons(client.receive(20))

    wait_for(arrived, 10, "a warm-up message through the raw PUB socket")


class _CreatesFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class TestProvenPublisher:
    def test_messages_sent_right_after_publisher_returns_all_reach_an_earlier_subscriber(
        self, make_client: ClientFactory
    ) -> None:
        receiver = make_client("receiver")
        receiver.publisher()  # its own probe came back: its subscription is at the proxy
        sender = make_client("sender")

        pub = sender.publisher()
        for i in range(50):
            pub.send(stop_message(f"m{i}", "receiver"))

        got = receive_until(receiver, lambda r: len(reasons(r)) >= 50, "50 messages")
        assert reasons(got) == [f"m{i}" for i in range(50)]

    def test_probes_never_reach_the_receiving_code(self, make_client: ClientFactory) -> None:
        receiver = make_client("receiver")
        receiver.publisher()
        receiver.publisher().send(stop_message("after the probe", "receiver"))

        got = receive_until(receiver, lambda r: "after the probe" in reasons(r), "the message")

        assert not any(isinstance(m, DAQJobMessageProbe) for m in got)
        assert all(m.is_remote for m in got)

    def test_one_thread_always_gets_the_same_publisher(self, make_client: ClientFactory) -> None:
        client = make_client("job")

        assert client.publisher() is client.publisher()
        assert client.publisher().socket.type == zmq.PUB

    def test_another_thread_gets_its_own_publisher_proven_while_one_thread_receives(
        self, make_client: ClientFactory
    ) -> None:
        client = make_client("job")
        main_publisher = client.publisher()
        made: dict[str, object] = {}

        def other_thread() -> None:
            pub = client.publisher()
            pub.send(stop_message("from the other thread", "job"))
            made["publisher"] = pub

        thread = threading.Thread(target=other_thread)
        thread.start()
        got = receive_until(
            client, lambda r: "from the other thread" in reasons(r), "the other thread's message"
        )  # this thread receives meanwhile
        thread.join(5)

        assert not thread.is_alive()
        assert made["publisher"] is not main_publisher
        assert reasons(got) == ["from the other thread"]


class TestMalformedFrames:
    def test_malformed_multiparts_are_counted_and_dropped_and_the_next_good_one_is_delivered(
        self, make_client: ClientFactory, raw_pub: zmq.Socket, tmp_path
    ) -> None:
        victim = make_client("victim")
        warm_up(raw_pub, victim, "victim")
        before = victim.malformed_count
        topic = wire(own_topic("victim"))
        pickled = pickle.dumps(_CreatesFile(str(tmp_path / "pwned")))
        malformed = [
            [topic],
            [topic, b"DAQJobMessageStop"],
            [topic, b"DAQJobMessageStop", b"\xc1 garbage"],
            [topic, b"os.system", msgspec.msgpack.encode({"reason": "x"})],
            [topic, b"DAQJobMessageStop", msgspec.msgpack.encode([1, 2, 3])],
            [topic, b"DAQJobMessageStop", pickled],
            [topic, b"\xff\xfe", b"\x80"],
        ]

        for frames in malformed:
            raw_pub.send_multipart(frames)
        raw_pub.send_multipart(frames_of(stop_message("good", "victim"), "victim"))
        got = receive_until(victim, lambda r: "good" in reasons(r), "the good message")

        assert victim.malformed_count - before == len(malformed)
        assert set(reasons(got)) <= {"warm-up", "good"}
        assert not (tmp_path / "pwned").exists()

    def test_a_message_with_a_truncated_arrow_frame_is_counted_and_dropped(
        self, make_client: ClientFactory, raw_pub: zmq.Socket
    ) -> None:
        victim = make_client("victim")
        warm_up(raw_pub, victim, "victim")
        before = victim.malformed_count
        good_table = DAQJobMessageStorePyArrow(
            store_config=DAQJobStoreConfig(), table=pa.table({"a": [1, 2, 3]})
        )
        type_frame, header, body = Encoder().encode(good_table)
        body = bytes(memoryview(body))

        raw_pub.send_multipart([wire(own_topic("victim")), type_frame, header, body[:-24]])
        raw_pub.send_multipart(frames_of(stop_message("good", "victim"), "victim"))
        receive_until(victim, lambda r: "good" in reasons(r), "the good message")

        assert victim.malformed_count - before == 1


class TestLostMessagesAreCounted:
    def test_a_gap_in_a_senders_numbers_is_counted_logged_and_the_rest_delivered(
        self, make_client: ClientFactory, raw_pub: zmq.Socket, caplog: pytest.LogCaptureFixture
    ) -> None:
        receiver = make_client("receiver")
        warm_up(raw_pub, receiver, "receiver")
        stamper = Stamper()
        sent = []
        with caplog.at_level(logging.WARNING):
            for number in range(1, 11):
                frame = stamper.frame(own_topic("receiver"))
                if number in (5, 6, 7):
                    continue  # as if a high-water mark had dropped them
                raw_pub.send_multipart([frame, *Encoder().encode(stop_message(f"m{number}", "receiver"))])
                sent.append(f"m{number}")
            got = receive_until(receiver, lambda r: len(reasons(r)) >= len(sent), "the 7 messages sent")

        assert reasons(got) == sent
        assert receiver.lost_count == 3
        assert "3 message(s) lost on the message plane before one on daq_job.receiver" in caplog.text

    def test_messages_a_full_high_water_mark_dropped_are_exactly_the_ones_counted(
        self, proxy: ProxyUrls, raw_pub: zmq.Socket
    ) -> None:
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 10)
        sub.connect(proxy.xpub_url)
        sub.setsockopt(zmq.SUBSCRIBE, exact(own_topic("slow")))
        raw_pub.setsockopt(zmq.SNDHWM, 0)
        stamper, gaps = Stamper(), GapCounter()
        body = Encoder().encode(stop_message("flood", "slow"))
        total = 250_000  # more than the proxy holds for one subscriber (100,000) and the sockets
        try:
            wait_for(
                lambda: raw_pub.send_multipart([wire(own_topic("slow")), *body]) or sub.poll(10),
                10,
                "the subscription to reach the proxy",
            )
            while sub.poll(50):
                sub.recv_multipart()
            # A subscriber that does not read while the flood goes by: ZMQ drops, silently.
            for _ in range(total):
                raw_pub.send_multipart([stamper.frame(own_topic("slow")), *body])
            received = 0
            while sub.poll(1000):
                gaps.see(sub.recv_multipart()[0])
                received += 1
            # A drop shows when the next message from that sender arrives: send one more.
            raw_pub.send_multipart([stamper.frame(own_topic("slow")), *body])
            assert sub.poll(5000), "the last message did not arrive"
            last = sub.recv_multipart()[0]
            gaps.see(last)
            received += 1
        finally:
            sub.close(0)
            context.term()

        assert 0 < received < total, "ZMQ did not drop: the test proves nothing"
        assert int.from_bytes(last[-8:], "little") == total + 1
        assert gaps.lost == total + 1 - received
