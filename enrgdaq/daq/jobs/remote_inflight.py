"""A sending bridge's payloads on their way: sent, not yet acknowledged, their ring slots held.

The receiving node says what it has on the shared Redis (:mod:`enrgdaq.message.acks`); a
payload is given back to its ring only then. Each payload carries, per topic, its own number
and the number sent before it on that stream (its ring's id and topic), so the receiver can
tell a payload that follows what it has from one after a gap (lost on the wire when the peer
died): it takes only the first. What the peer does not acknowledge is sent again, in order:
when the peer comes back, or when a stream has had no acknowledgement for ``RESEND_SECONDS``
(the peer lost messages without its subscription going away), or at once when the receiver
asks for it (:data:`~enrgdaq.message.acks.GAP`).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis
import zmq

from enrgdaq.message.acks import ACK_SECONDS, GAP, GAP_EVERY_SECONDS, AckBoard

logger = logging.getLogger(__name__)

RESEND_SECONDS = 3.0
"""A stream whose oldest payload waits this long with no acknowledgement meanwhile is sent again."""


@dataclass
class Outgoing:
    """A payload taken from a ring, and what of it is sent (per topic, stamped once)."""

    message: Any
    parts: list[list[Any]] | None = None
    next_part: int = 0
    sender: bytes = b""  # its ring's stream id ("": not acknowledged, given back once sent)
    seq: int = 0
    topics: tuple[str, ...] = ()
    sent_at: float = 0.0
    released: bool = False  # its slot given back early (a stalled peer): the parts are copies

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.message.release()

    def own_parts(self) -> None:
        """Copy the parts out of the ring and give the slot back (kept in memory from now on)."""
        if self.parts is not None:
            self.parts = [
                [f if isinstance(f, bytes) else bytes(memoryview(f)) for f in p] for p in self.parts
            ]
        self.release()

    def send(self, socket: zmq.Socket) -> bool:
        """Send the parts not sent yet; False when the peer's queue is full (try again later)."""
        assert self.parts is not None
        while self.next_part < len(self.parts):
            try:
                socket.send_multipart(self.parts[self.next_part], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            self.next_part += 1
        return True

    def acked(self, have: dict[str, int]) -> bool:
        return all(have.get(topic, 0) >= self.seq for topic in self.topics)


@dataclass
class Inflight:
    """The payloads one bridge sent and the peer has not acknowledged, per ring, in order."""

    board: AckBoard
    name: str  # the bridge, for log lines
    count: int = 0
    resent: int = 0
    last_ack: float = 0.0  # when the peer last acknowledged something (or the first send since)
    _queues: dict[bytes, deque[Outgoing]] = field(default_factory=dict)
    _progress: dict[bytes, float] = field(default_factory=dict)  # sender -> last acknowledgement
    _chain: dict[tuple[bytes, str], int] = field(default_factory=dict)  # stream -> last number sent
    _gaps: dict[bytes, int] = field(default_factory=dict)  # sender -> the receiver's last ask, done
    _next_poll: float = 0.0
    _next_gap_resend: float = 0.0

    def previous(self, sender: bytes, topic: str, seq: int) -> int:
        """The number sent before ``seq`` on the stream (sender, topic), and ``seq`` is now the
        last. A new run starts the chain at what the receiver has (0: unknown, taken as it is)."""
        key = (sender, topic)
        prev = self._chain.get(key)
        if prev is None:
            try:
                prev = self.board.fetch([sender])[sender].get(topic, 0)
            except redis.RedisError:
                prev = 0
        self._chain[key] = seq
        return prev

    def add(self, out: Outgoing, now: float) -> None:
        out.sent_at = now
        if not self.count:
            self.last_ack = now
        queue = self._queues.get(out.sender)
        if queue is None:
            queue = self._queues[out.sender] = deque()
            self._progress[out.sender] = now
        queue.append(out)
        self.count += 1

    def poll(self, now: float) -> list[Outgoing]:
        """Give back what the peer has (at most every ``ACK_SECONDS``); returns what is to be sent
        again (empty: nothing)."""
        if not self.count or now < self._next_poll:
            return []
        self._next_poll = now + ACK_SECONDS
        try:
            have = self.board.fetch(list(self._queues))
        except redis.RedisError as exc:
            logger.warning("[%s] cannot read acknowledgements: %s", self.name, exc)
            self._next_poll = now + 1.0
            return []
        stalled = asked = False
        for sender, queue in list(self._queues.items()):
            acks = have.get(sender, {})
            if acks.get(GAP, 0) > self._gaps.get(sender, 0) and now >= self._next_gap_resend:
                self._gaps[sender] = acks[GAP]
                asked = True
            while queue and queue[0].acked(acks):
                queue.popleft().release()
                self.count -= 1
                self._progress[sender] = now
                self.last_ack = now
            if not queue:
                del self._queues[sender]
                del self._progress[sender]
            elif now - queue[0].sent_at > RESEND_SECONDS and now - self._progress[sender] > RESEND_SECONDS:
                stalled = True
        if asked:
            self._next_gap_resend = now + GAP_EVERY_SECONDS
            return self.rewind("the peer lost payloads")
        return self.rewind(f"no acknowledgement for {RESEND_SECONDS:g} s") if stalled else []

    def rewind(self, why: str) -> list[Outgoing]:
        """Every payload not acknowledged, in order, to be sent again (with the same stamps)."""
        again = [out for queue in self._queues.values() for out in queue]
        for out in again:
            out.next_part = 0
        self._queues.clear()
        self._progress.clear()
        self.count = 0
        self.resent += len(again)
        if again:
            logger.info("[%s] %s: sending %d payload(s) again", self.name, why, len(again))
        return again

    def outgoing(self) -> list[Outgoing]:
        return [out for queue in self._queues.values() for out in queue]

    def clear(self) -> None:
        self._queues.clear()
        self._progress.clear()
        self.count = 0
