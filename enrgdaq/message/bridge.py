"""What a data bridge lets through between a node's proxy and another node's.

Frames cross as they are (``[stamped topic, type, header, *buffers]``, no pickle), but each is
decoded first: a malformed one is counted and dropped, never forwarded. Rules, so that every
message crosses once in any topology the configs allow (a star, a chain, A and B bridged both
ways):

* out of a node go only messages that were made on it (their ``supervisor_id`` is the node's):
  a message that came in over a bridge never goes out again, so there are no loops;
* into a node come only messages made elsewhere, each once: the sequence stamp every publisher
  puts on its topic frames (:mod:`enrgdaq.message.sequence`) names a stream, and a number not
  above the last one taken of that stream (:class:`~enrgdaq.message.seen.SeenLog`, kept across
  a kill of the bridge) is a duplicate, dropped and counted; the bridge records a message as
  taken once it has handed it on;
* ring wake-ups never cross (a ring lives on one machine), nor messages meant for the local
  supervisor's stores (``target_local_supervisor``).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageRingNotify
from enrgdaq.daq.topics import TERMINATOR, from_wire
from enrgdaq.errors import MessageError
from enrgdaq.message.seen import SeenLog
from enrgdaq.message.sequence import CHAIN
from enrgdaq.message.wire import Decoder

_STAMP = struct.Struct("<8sQQ")
_NUL = TERMINATOR.encode()


class Inbound(NamedTuple):
    """A message from the peer that goes into this node, as sent on ``topic`` (a message of
    several topics crosses once per topic, each for that topic's subscribers); ``stream`` is
    None when unstamped."""

    message: DAQJobMessage
    topic: str
    stream: bytes | None
    seq: int


@dataclass
class BridgeCounts:
    forwarded_out: int = 0
    forwarded_in: int = 0
    malformed: int = 0
    duplicates: int = 0
    not_ours: int = 0  # came in over a bridge: never sent on (the loop guard)
    after_gap: int = 0  # a bridge's payload after one that was lost: dropped, the sender sends both again
    dropped: int = 0  # inline messages the peer could not take (its queue full)


class BridgeFilter:
    """The checks of one bridge; ``node`` is the supervisor id of the node it runs on."""

    def __init__(self, node: str, seen: SeenLog | None = None) -> None:
        self.node = node
        self.counts = BridgeCounts()
        self.seen = seen if seen is not None else SeenLog(None)
        self.gaps: dict[bytes, int] = {}  # sender -> when a payload after a gap was dropped (ns)
        self._decoder = Decoder()

    def outbound(self, frames: list[Any]) -> bool:
        """Whether a message of the local proxy goes to the peer."""
        message = self._decode(frames)
        return message is not None and self.leaves(message)

    def leaves(self, message: DAQJobMessage) -> bool:
        """Whether a message of this node (from its proxy or its rings) goes to the peer."""
        if not self._crosses(message):
            return False
        if _origin(message) != self.node:
            self.counts.not_ours += 1
            return False
        self.counts.forwarded_out += 1
        return True

    def inbound(self, frames: list[Any]) -> Inbound | None:
        """The message from the peer if it goes into this node (else None). A duplicate, or a
        bridge's payload after a gap, is dropped before it is decoded (a peer sending again
        after a reconnect costs little); the caller records the message in :attr:`seen` once
        handed on (one that does not come in is recorded here: its stream goes on)."""
        stream, seq, prev = _stamp(_bytes(frames[0]))
        if stream is not None:
            last = self.seen.last(stream)
            if last is not None and seq <= last:
                self.counts.duplicates += 1
                return None
            if last is not None and prev is not None and prev > last:
                self.counts.after_gap += 1
                self.gaps.setdefault(stream[-8:], time.time_ns())
                return None
        message = self._decode(frames)
        if message is None or not self._crosses(message) or _origin(message) == self.node:
            if stream is not None:
                self.seen.take(stream, seq)
            return None
        self.counts.forwarded_in += 1
        return Inbound(message, from_wire(_bytes(frames[0])), stream, seq)

    def _decode(self, frames: list[Any]) -> DAQJobMessage | None:
        try:
            return self._decoder.decode(frames[1:])
        except (MessageError, IndexError):
            self.counts.malformed += 1
            return None

    @staticmethod
    def _crosses(message: DAQJobMessage) -> bool:
        if isinstance(message, DAQJobMessageRingNotify):
            return False
        return not getattr(message, "target_local_supervisor", False)


def _stamp(topic_frame: bytes) -> tuple[bytes | None, int, int | None]:
    """The stream (wire topic and sender id), number and, for a bridge's chained stamp, the
    number before it, of a stamped topic frame; (None, 0, None) when unstamped (a foreign
    publisher: nothing to compare)."""
    cut = topic_frame.find(_NUL)
    if cut < 0:
        return None, 0, None
    size = len(topic_frame) - cut - 1
    if size == _STAMP.size:
        return topic_frame[: cut + 9], _STAMP.unpack_from(topic_frame, cut + 1)[2], None
    if size == CHAIN.size:
        _, seq, prev, _ = CHAIN.unpack_from(topic_frame, cut + 1)
        return topic_frame[: cut + 9], seq, prev
    return None, 0, None


def _origin(message: DAQJobMessage) -> str | None:
    info = message.daq_job_info
    if info is None or info.supervisor_info is None:
        return None
    return info.supervisor_info.supervisor_id


def _bytes(frame: Any) -> bytes:
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)
