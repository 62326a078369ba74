"""Sequence stamps on the message plane: ZMQ pub/sub drops silently, so receivers count the gaps.

Every publisher stamps the topic frame of each message, after the topic's
terminator, with its own random id, the time it sent the message (its
``time.monotonic_ns()``) and a per-topic sequence number. A subscription still
matches (ZMQ compares prefixes). A receiver that sees number N+k after N from
the same sender on the same topic knows that k-1 messages were lost on the
way (a high-water mark: the sender's, the proxy's or its own) and counts them.
What a receiver misses while it is not connected at all cannot be seen this
way; ring payloads never depend on the message plane (a store finds them from
its cursor).

**Which gaps are believed.** A stamp is whatever arrived on the wire, so a
forged or corrupt one (a number 1,000,000 ahead) must not show as a million
messages lost. The high-water marks on the path do not bound a gap: ZMQ drops
the *newest* messages while a queue is full, so a receiver that stalls loses
everything its senders send meanwhile in one run (measured here: with every
mark at 100,000, a stalled receiver saw one gap of 600,001 after a flood of
800,000). What does bound it is the sender's own clock: the k-1 missing
messages were sent between the two stamps, and sending a message takes more
than :data:`MIN_SEND_NS` (a Python publisher needs a few microseconds; about
180,000 messages a second at most on the 2-core test machine, 5 us each). A
gap is therefore believed when ``k - 1 <= (t(N+k) - t(N) + CLOCK_SLACK_NS) /
MIN_SEND_NS``. Anything else (a gap the sender's clock cannot account for, a
number that does not move forward, a stamp of the wrong size) is a
*protocol error* of that sender, counted apart from loss, and the stream's
state is left as it was, so that its next genuine message is judged against
its last genuine one. A forger who also forges a consistent send time is not
caught: stamps are not authenticated; the check rejects stamps that contradict
themselves.
"""

from __future__ import annotations

import os
import struct
import time

from enrgdaq.daq.topics import TERMINATOR, wire

_STAMP = struct.Struct("<8sQQ")  # sender id, send time (ns), sequence number (last: read by tests)
_NUL = TERMINATOR.encode()
MAX_STREAMS = 4096
"""Senders x topics a receiver remembers; more (restarts over weeks) start the memory afresh."""

MIN_SEND_NS = 100
"""Less than any publisher needs to send one message: 10 million a second, above libzmq's own
ceiling for one socket and 50 times what a Python publisher reaches here."""
CLOCK_SLACK_NS = 1_000_000
"""Added to the sender's elapsed time: a coarse clock (down to 1 ms resolution) may stamp two
messages sent apart with the same time."""


class Stamper:
    """The topic frames of one publisher (one sending thread)."""

    def __init__(self) -> None:
        self.sender = os.urandom(8)
        self._next: dict[str, int] = {}
        self._wire: dict[str, bytes] = {}

    def frame(self, topic: str, now_ns: int | None = None) -> bytes:
        """The topic frame of the next message on ``topic``, sent at ``now_ns`` (default: now)."""
        seq = self._next.get(topic, 1)
        self._next[topic] = seq + 1
        head = self._wire.get(topic)
        if head is None:
            head = self._wire[topic] = wire(topic)
        return head + _STAMP.pack(self.sender, time.monotonic_ns() if now_ns is None else now_ns, seq)


CHAIN = struct.Struct("<8sQQQ")
"""A bridge's stamp: stream id, sequence number, and the number sent before it on the stream
(sender id, topic), so that a receiver tells a gap (something lost on the way) from a payload
the sender chose not to send; and the commit time of its ring slot."""


def chained(topic: str, sender: bytes, seq: int, prev: int, sent_ns: int = 0) -> bytes:
    """The topic frame of a bridge's payload (:data:`CHAIN`): a bridge numbers the payloads of a
    ring by their place in it, the same in each of its runs."""
    return wire(topic) + CHAIN.pack(sender, seq, prev, sent_ns)


class GapCounter:
    """What one receiver saw of each (sender, topic): the gaps in their numbers are lost messages.

    ``lost`` counts believed gaps; ``protocol_errors`` counts stamps that cannot be true.
    """

    def __init__(self) -> None:
        self.lost = 0
        self.protocol_errors = 0
        self._last: dict[bytes, tuple[int, int]] = {}  # stream -> (sequence number, send time)

    def see(self, topic_frame: bytes) -> int:
        """How many messages of this stream were lost just before this one (0 when unstamped or
        when the stamp is a protocol error: see ``protocol_errors``)."""
        cut = topic_frame.find(_NUL)
        if cut < 0:
            return 0
        size = len(topic_frame) - cut - 1
        if size != _STAMP.size:
            if size:
                self.protocol_errors += 1  # a stamp, but not one of ours
            return 0
        stream = topic_frame[: cut + 9]  # topic, terminator, sender id
        _, sent_ns, seq = _STAMP.unpack_from(topic_frame, cut + 1)
        last = self._last.get(stream)
        if last is None:
            if len(self._last) >= MAX_STREAMS:
                self._last.clear()
            self._last[stream] = (seq, sent_ns)
            return 0
        gap = seq - last[0] - 1
        if gap < 0 or gap * MIN_SEND_NS > sent_ns - last[1] + CLOCK_SLACK_NS:
            self.protocol_errors += 1  # not after the last one, or more than the sender could send
            return 0
        self._last[stream] = (seq, sent_ns)
        self.lost += gap
        return gap


def sender_of(topic_frame: bytes) -> str:
    """The sender id of a stamped topic frame, in hex (for log lines); ``?`` when unstamped."""
    cut = topic_frame.find(_NUL)
    return topic_frame[cut + 1 : cut + 9].hex() if cut >= 0 and len(topic_frame) > cut + 8 else "?"
