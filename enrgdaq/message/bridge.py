"""What a data bridge lets through between a node's proxy and another node's.

Frames cross as they are (``[stamped topic, type, header, *buffers]``, no pickle), but each is
decoded first: a malformed one is counted and dropped, never forwarded. Rules, so that every
message crosses once in any topology the configs allow (a star, a chain, A and B bridged both
ways):

* out of a node go only messages that were made on it (their ``supervisor_id`` is the node's):
  a message that came in over a bridge never goes out again, so there are no loops;
* into a node come only messages made elsewhere, each once: the sequence stamp every publisher
  puts on its topic frames (:mod:`enrgdaq.message.sequence`) names a stream, and a number not
  above the last one seen of that stream is a duplicate, dropped and counted;
* ring wake-ups never cross (a ring lives on one machine), nor messages meant for the local
  supervisor's stores (``target_local_supervisor``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageRingNotify
from enrgdaq.daq.topics import TERMINATOR
from enrgdaq.errors import MessageError
from enrgdaq.message.wire import Decoder

_STAMP = struct.Struct("<8sQQ")
_NUL = TERMINATOR.encode()
MAX_STREAMS = 65536


@dataclass
class BridgeCounts:
    forwarded_out: int = 0
    forwarded_in: int = 0
    malformed: int = 0
    duplicates: int = 0
    not_ours: int = 0  # came in over a bridge: never sent on (the loop guard)
    dropped: int = 0  # inline messages the peer could not take (its queue full)


class BridgeFilter:
    """The checks of one bridge; ``node`` is the supervisor id of the node it runs on."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.counts = BridgeCounts()
        self._decoder = Decoder()
        self._last: dict[bytes, int] = {}

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

    def inbound(self, frames: list[Any]) -> DAQJobMessage | None:
        """The message from the peer if it goes into this node (else None)."""
        message = self._decode(frames)
        if message is None or not self._crosses(message) or _origin(message) == self.node:
            return None
        if not self._first_time(_bytes(frames[0])):
            self.counts.duplicates += 1
            return None
        self.counts.forwarded_in += 1
        return message

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

    def _first_time(self, topic_frame: bytes) -> bool:
        cut = topic_frame.find(_NUL)
        if cut < 0 or len(topic_frame) - cut - 1 != _STAMP.size:
            return True  # unstamped (a foreign publisher): nothing to compare
        stream = topic_frame[: cut + 9]
        seq = _STAMP.unpack_from(topic_frame, cut + 1)[2]
        last = self._last.get(stream)
        if last is not None and seq <= last:
            return False
        if last is None and len(self._last) >= MAX_STREAMS:
            self._last.clear()
        self._last[stream] = seq
        return True


def _origin(message: DAQJobMessage) -> str | None:
    info = message.daq_job_info
    if info is None or info.supervisor_info is None:
        return None
    return info.supervisor_info.supervisor_id


def _bytes(frame: Any) -> bytes:
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)
