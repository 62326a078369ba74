"""A job's end of the message plane: one SUB socket, one PUB socket per sending thread.

A PUB socket that has just connected drops what it sends until the proxy has
told it the subscriptions (the "slow joiner"). Every publisher therefore
proves its path before it is used: it sends a probe on the job's own topic
until the job's SUB socket receives it. Subscriptions reach a new PUB pipe
in order, so once the probe is back, the pipe knows every subscription the
proxy had when it attached.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import zmq

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.stats import worth_a_line
from enrgdaq.daq.topics import Topic, from_wire
from enrgdaq.errors import MessageError
from enrgdaq.message.sequence import GapCounter, Stamper, sender_of
from enrgdaq.message.wire import Decoder, Encoder

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
RECEIVE_BATCH = 256
SEND_HWM = 100_000
"""Messages a publisher queues before ZMQ drops (the proxy's marks: :data:`enrgdaq.message.proxy.HWM`)."""
RECEIVE_HWM = 100_000
"""Messages a job's SUB socket queues before the proxy drops what is sent to it."""


class DAQJobMessageProbe(DAQJobMessage, kw_only=True):
    """Readiness probe of a new publisher; never reaches job code."""

    token: str


class Publisher:
    """Sends messages from one thread (ZMQ sockets are not thread-safe)."""

    def __init__(self, context: zmq.Context, xsub_url: str) -> None:
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.socket.connect(xsub_url)
        self._encoder = Encoder()
        self._stamper = Stamper()
        self.thread_id = threading.get_ident()

    def send(self, message: DAQJobMessage) -> int:
        """Send on every topic of the message; returns the bytes sent per topic."""
        frames = self._encoder.encode(message)
        size = sum(len(memoryview(f)) for f in frames)
        now_ns = time.monotonic_ns()
        for topic in message.topics:
            self.socket.send_multipart([self._stamper.frame(topic, now_ns), *frames], copy=False)
        return size

    def close(self) -> None:
        self.socket.close()


class MessagePlaneClient:
    """The sockets of one job. ``receive`` must always be called from one thread."""

    def __init__(
        self,
        xpub_url: str,
        xsub_url: str,
        subscriptions: list[bytes],
        own_topic: str,
        log: logging.LoggerAdapter | logging.Logger = logger,
    ) -> None:
        self.xpub_url = xpub_url
        self.xsub_url = xsub_url
        self.own_topic = own_topic
        self.log = log
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        self.sub.connect(xpub_url)
        for subscription in subscriptions:
            self.sub.setsockopt(zmq.SUBSCRIBE, subscription)
        self._poller = zmq.Poller()
        self._poller.register(self.sub, zmq.POLLIN)
        self._decoder = Decoder()
        self._local = threading.local()
        self._publishers: list[Publisher] = []
        self._lock = threading.Lock()
        self._probes: dict[str, threading.Event] = {}
        self._backlog: deque[DAQJobMessage] = deque()
        self._inbound_thread: int | None = None
        self.malformed_count = 0
        self.received_bytes = 0
        self._gaps = GapCounter()

    # -- receiving ------------------------------------------------------------
    def receive(self, timeout_ms: int) -> list[DAQJobMessage]:
        """Messages that arrived within ``timeout_ms`` (probes and malformed frames removed)."""
        self._inbound_thread = threading.get_ident()
        out: list[DAQJobMessage] = []
        while self._backlog:
            out.append(self._backlog.popleft())
        if out:
            timeout_ms = 0
        if not self._poller.poll(timeout_ms):
            return out
        for _ in range(RECEIVE_BATCH):
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            message = self._decode(frames)
            if message is not None:
                out.append(message)
        return out

    @property
    def lost_count(self) -> int:
        """Messages lost on the way to this receiver (gaps in their senders' sequence numbers)."""
        return self._gaps.lost

    @property
    def protocol_error_count(self) -> int:
        """Sequence stamps that cannot be true (forged or corrupt): never counted as loss."""
        return self._gaps.protocol_errors

    def _decode(self, frames: list[zmq.Frame]) -> DAQJobMessage | None:
        self.received_bytes += sum(len(f) for f in frames)
        self._count_gap(frames[0].bytes)
        try:
            message = self._decoder.decode(frames[1:])
        except MessageError as exc:
            self.malformed_count += 1
            if self.malformed_count <= 10 or self.malformed_count % 1000 == 0:
                self.log.warning("dropped malformed message #%d: %s", self.malformed_count, exc)
            return None
        if isinstance(message, DAQJobMessageProbe):
            event = self._probes.get(message.token)
            if event is not None:
                event.set()
            return None
        message.is_remote = True
        return message

    def _count_gap(self, topic_frame: bytes) -> None:
        """Count (and now and then log) lost messages and impossible stamps before this one."""
        gaps = self._gaps
        errors = gaps.protocol_errors
        gap = gaps.see(topic_frame)
        if gap and worth_a_line(gaps.lost - gap, gaps.lost):
            self.log.warning(
                "%d message(s) lost on the message plane before one on %s (%d in all); "
                "a high-water mark was reached",
                gap,
                from_wire(topic_frame),
                gaps.lost,
            )
        if gaps.protocol_errors > errors and worth_a_line(errors, gaps.protocol_errors):
            self.log.warning(
                "sequence stamp on %s that its sender cannot have sent (sender %s; %d in all); "
                "not counted as loss",
                from_wire(topic_frame),
                sender_of(topic_frame),
                gaps.protocol_errors,
            )

    # -- sending --------------------------------------------------------------
    def publisher(self) -> Publisher:
        """The calling thread's publisher, created and proven on first use."""
        pub: Publisher | None = getattr(self._local, "publisher", None)
        if pub is None:
            pub = Publisher(self.context, self.xsub_url)
            self._await_probe(pub)
            self._local.publisher = pub
            with self._lock:
                self._publishers.append(pub)
        return pub

    def _await_probe(self, pub: Publisher) -> None:
        token = uuid.uuid4().hex
        event = threading.Event()
        self._probes[token] = event
        probe = DAQJobMessageProbe(token=token, topics={self.own_topic})
        pump: Callable[[], None]
        if self._inbound_thread in (None, threading.get_ident()):

            def pump() -> None:
                self._backlog.extend(self.receive(20))
        else:

            def pump() -> None:
                event.wait(0.02)

        deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
        try:
            while not event.is_set():
                if time.monotonic() > deadline:
                    self.log.warning(
                        "publisher not confirmed by the proxy at %s after %.0f s; is the "
                        "supervisor running? sending anyway",
                        self.xsub_url,
                        PROBE_TIMEOUT_SECONDS,
                    )
                    return
                pub.send(probe)
                pump()
        finally:
            self._probes.pop(token, None)

    def release_receiver(self) -> None:
        """Forget which thread received last: the next caller of ``receive`` takes the role.

        Called when the thread that built the job is not the one that will run it.
        """
        self._inbound_thread = None

    def close(self) -> None:
        with self._lock:
            for pub in self._publishers:
                pub.close()
            self._publishers.clear()
        self.sub.close(0)
        self.context.term()


def own_topic(unique_id: str) -> str:
    return Topic.daq_job_direct(unique_id)
