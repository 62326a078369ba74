"""Sequence stamps on the message plane: ZMQ pub/sub drops silently, so receivers count the gaps.

Every publisher stamps the topic frame of each message, after the topic's
terminator, with its own random id and a per-topic sequence number. A
subscription still matches (ZMQ compares prefixes). A receiver that sees
number N+k after N from the same sender on the same topic knows that k-1
messages were lost on the way (a high-water mark: the sender's, the proxy's
or its own) and counts them. What a receiver misses while it is not connected
at all cannot be seen this way; ring payloads never depend on the message
plane (a store finds them from its cursor).
"""

from __future__ import annotations

import os
import struct

from enrgdaq.daq.topics import TERMINATOR, wire

_STAMP = struct.Struct("<8sQ")
_NUL = TERMINATOR.encode()
MAX_STREAMS = 4096
"""Senders x topics a receiver remembers; more (restarts over weeks) start the memory afresh."""


class Stamper:
    """The topic frames of one publisher (one sending thread)."""

    def __init__(self) -> None:
        self.sender = os.urandom(8)
        self._next: dict[str, int] = {}
        self._wire: dict[str, bytes] = {}

    def frame(self, topic: str) -> bytes:
        seq = self._next.get(topic, 1)
        self._next[topic] = seq + 1
        head = self._wire.get(topic)
        if head is None:
            head = self._wire[topic] = wire(topic)
        return head + _STAMP.pack(self.sender, seq)


class GapCounter:
    """What one receiver saw of each (sender, topic): the gaps in their numbers are lost messages."""

    def __init__(self) -> None:
        self.lost = 0
        self._last: dict[bytes, int] = {}

    def see(self, topic_frame: bytes) -> int:
        """How many messages of this stream were lost just before this one (0 when unstamped)."""
        cut = topic_frame.find(_NUL)
        if cut < 0 or len(topic_frame) - cut - 1 != _STAMP.size:
            return 0
        stream = topic_frame[: cut + 9]  # topic, terminator, sender id
        (seq,) = struct.unpack_from("<Q", topic_frame, cut + 9)
        last = self._last.get(stream)
        if last is None and len(self._last) >= MAX_STREAMS:
            self._last.clear()
        if last is not None and seq <= last:
            return 0
        self._last[stream] = seq
        if last is None:
            return 0
        gap = seq - last - 1
        self.lost += gap
        return gap
