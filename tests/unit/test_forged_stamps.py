"""Sequence stamps are not trusted: a stamp its sender cannot have sent is a protocol error, not loss.

Real ZMQ: a real proxy, real sockets; forged stamps are sent by a bare PUB socket.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator

import pytest
import zmq

from enrgdaq.control.status_document import data_warnings
from enrgdaq.daq.topics import exact, wire
from enrgdaq.message.client import RECEIVE_HWM, SEND_HWM, MessagePlaneClient, own_topic
from enrgdaq.message.proxy import HWM
from enrgdaq.message.sequence import GapCounter, Stamper
from enrgdaq.message.wire import Encoder
from tests.unit.conftest import ProxyUrls
from tests.unit.test_message_plane import reasons, receive_until, stop_message, warm_up

STAMP = struct.Struct("<8sQQ")


def forged(stamper: Stamper, topic: str, seq: int, sent_ns: int | None = None) -> bytes:
    """A topic frame in ``stamper``'s name with a number of our choosing."""
    now = time.monotonic_ns() if sent_ns is None else sent_ns
    return wire(topic) + STAMP.pack(stamper.sender, now, seq)


@pytest.fixture
def receiver(proxy: ProxyUrls) -> Iterator[MessagePlaneClient]:
    topic = own_topic("receiver")
    client = MessagePlaneClient(proxy.xpub_url, proxy.xsub_url, [exact(topic)], own_topic=topic)
    yield client
    client.close()


@pytest.fixture
def sender(proxy: ProxyUrls) -> Iterator[zmq.Socket]:
    """A bare PUB socket on the proxy's XSUB side, with a publisher's high-water mark."""
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, SEND_HWM)
    sock.connect(proxy.xsub_url)
    yield sock
    sock.close(linger=0)
    context.term()


def test_a_stamp_a_million_ahead_is_a_protocol_error_of_its_sender_not_loss(
    receiver: MessagePlaneClient, sender: zmq.Socket, caplog: pytest.LogCaptureFixture
) -> None:
    warm_up(sender, receiver, "receiver")
    topic = own_topic("receiver")
    stamper = Stamper()

    def send(frame: bytes, reason: str) -> None:
        sender.send_multipart([frame, *Encoder().encode(stop_message(reason, "receiver"))])

    with caplog.at_level(logging.WARNING):
        for number in range(1, 6):
            send(stamper.frame(topic), f"m{number}")
        send(forged(stamper, topic, 5 + 1_000_000), "forged")
        send(stamper.frame(topic), "m6")  # the sender goes on: the forged number changed nothing
        for _ in (7, 8):
            stamper.frame(topic)  # lost, as at a full high-water mark
        send(stamper.frame(topic), "m9")
        got = receive_until(receiver, lambda r: "m9" in reasons(r), "the messages after the forged one")

    assert [r for r in reasons(got) if r != "warm-up"] == ["m1", "m2", "m3", "m4", "m5", "forged", "m6", "m9"]
    assert receiver.protocol_error_count == 1
    assert receiver.lost_count == 2  # 7 and 8, judged against 6, not against the forged number
    assert f"sender {stamper.sender.hex()}" in caplog.text
    assert "1000000 message(s) lost" not in caplog.text


def test_protocol_errors_show_in_status_beside_loss() -> None:
    lines = data_warnings("job", {"protocol_errors": 3, "message_lost": 2})

    assert lines == ["job: 2 lost on the message plane, 3 impossible sequence stamps (forged or corrupt)"]


class TestWhatAStampCannotBe:
    def test_a_number_that_does_not_move_forward_is_a_protocol_error(self) -> None:
        gaps, stamper = GapCounter(), Stamper()
        first = stamper.frame("t")
        second = stamper.frame("t")

        assert [gaps.see(first), gaps.see(second), gaps.see(second), gaps.see(first)] == [0, 0, 0, 0]
        assert (gaps.lost, gaps.protocol_errors) == (0, 2)

    def test_a_gap_that_the_senders_own_clock_cannot_account_for_is_a_protocol_error(self) -> None:
        gaps, stamper = GapCounter(), Stamper()
        start = time.monotonic_ns()
        gaps.see(forged(stamper, "t", 1, start))

        # 10 ms of the sender's time: at most 10 ms + 1 ms of slack at 100 ns a message.
        assert gaps.see(forged(stamper, "t", 2 + 110_000, start + 10_000_000)) == 110_000
        assert gaps.see(forged(stamper, "t", 3 + 220_000 + 1, start + 20_000_000)) == 0
        assert gaps.see(forged(stamper, "t", 110_003 + 5, start - 5_000_000)) == 0  # time went back
        assert (gaps.lost, gaps.protocol_errors) == (110_000, 2)

    def test_a_stamp_of_another_size_is_a_protocol_error_and_an_unstamped_frame_is_not(self) -> None:
        gaps = GapCounter()

        assert gaps.see(wire("t") + b"\x01\x02\x03") == 0
        assert gaps.see(wire("t")) == 0
        assert gaps.protocol_errors == 1


def test_a_flood_beyond_every_high_water_mark_on_the_path_is_loss_counted_exactly(
    proxy: ProxyUrls, sender: zmq.Socket
) -> None:
    """ZMQ drops the newest messages while a queue is full: a stalled receiver loses more in one
    run than all the high-water marks hold together, and that is loss, not a protocol error."""
    path_holds = SEND_HWM + HWM + HWM + RECEIVE_HWM  # publisher, proxy XSUB and XPUB, subscriber
    total = path_holds + 250_000
    topic = own_topic("slow")
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
    sub.connect(proxy.xpub_url)
    sub.setsockopt(zmq.SUBSCRIBE, exact(topic))
    stamper, gaps = Stamper(), GapCounter()
    body = Encoder().encode(stop_message("flood", "slow"))
    received, largest, last = 0, 0, 0

    def take() -> None:
        nonlocal received, largest, last
        frame = sub.recv_multipart()[0]
        largest = max(largest, gaps.see(frame))
        last = int.from_bytes(frame[-8:], "little")
        received += 1

    try:
        assert wait_for_subscription(sender, sub, wire(topic), body)
        for _ in range(total):  # the receiver does not read meanwhile
            sender.send_multipart([stamper.frame(topic), *body])
        while sub.poll(1000):
            take()
        sender.send_multipart([stamper.frame(topic), *body])  # a drop shows with the next message
        assert sub.poll(5000), "the last message did not arrive"
        take()
    finally:
        sub.close(0)
        context.term()

    assert last == total + 1
    assert largest > path_holds, "no run of drops beyond the marks: the test proves nothing"
    assert gaps.lost == total + 1 - received
    assert gaps.protocol_errors == 0


def wait_for_subscription(sender: zmq.Socket, sub: zmq.Socket, topic_frame: bytes, body: list) -> bool:
    """Send unstamped messages until one arrives, then empty the subscriber."""
    deadline = time.monotonic() + 10
    while not sub.poll(10):
        if time.monotonic() > deadline:
            return False
        sender.send_multipart([topic_frame, *body])
    while sub.poll(50):
        sub.recv_multipart()
    return True
