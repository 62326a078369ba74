"""A bridge's side of the node's rings: store payloads of this node's producers, sent as bytes.

A ring slot is a place in this machine's memory; what crosses to another node is the message
itself, encoded for the wire (an Arrow table as one Arrow IPC stream frame, raw bytes as they
are). The bridge is a consumer of every producer's ring (the routes list it under ``"*"``), so
a payload waits in the ring while the peer cannot take it (not connected, or its queue full):
the ring is the bridge's buffer, and when it is full the producer's ring policy applies
(``block`` holds the producer; ``drop`` drops and counts). A slot is given back once its
message is handed to the peer's socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import zmq

from enrgdaq.daq.store.retry import keep_in_ring
from enrgdaq.data.reader import RingReader
from enrgdaq.message.bridge import BridgeFilter
from enrgdaq.message.sequence import Stamper
from enrgdaq.message.wire import Encoder

SCAN_SECONDS = 0.5
"""How often new rings (a producer that started) are looked for."""
BATCH = 256
"""Payloads taken from one ring per turn (the bridge's other sockets are served between turns)."""


@dataclass
class Outgoing:
    """A payload taken from a ring, and what of it is sent (per topic, stamped once)."""

    message: Any
    parts: list[list[Any]] | None = None
    next_part: int = 0

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


class RingPayloads:
    """The rings one bridge reads (see the module)."""

    def __init__(self, consumer: str, run_dir: str, bridge_filter: BridgeFilter) -> None:
        self._reader = RingReader(consumer, run_dir)
        self._filter = bridge_filter
        self._encoder = Encoder()
        self._stamper = Stamper()
        self._next_scan = 0.0
        self._pending: list[Outgoing] = []  # taken, not yet handed to the peer (its queue was full)

    @property
    def reading(self) -> bool:
        return bool(self._reader.trackers)

    def forward(self, socket: zmq.Socket, peer_ready: bool) -> bool:
        """Send what waits in the rings while the peer takes it; True if anything was sent."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._reader.scan()
            self._reader.heartbeat()
            self._next_scan = now + SCAN_SECONDS
        if not peer_ready:
            return False
        if not self._pending:
            self._pending = [Outgoing(m) for m in self._reader.drain(limit=BATCH)]
        sent = 0
        while self._pending:
            out = self._pending[0]
            if out.parts is None:
                out.parts = self._parts(out.message) if self._filter.leaves(out.message) else []
            if not out.send(socket):
                break  # the peer's queue is full: the rest waits (in memory, in its slots)
            self._pending.pop(0).message.release()
            sent += 1
        return sent > 0

    def _parts(self, message: Any) -> list[list[Any]]:
        """The message once per topic, stamped once: sent again after a full queue, it keeps its
        numbers (the receiver drops what it already has)."""
        frames = self._encoder.encode(message)
        return [[self._stamper.frame(topic), *frames] for topic in sorted(message.topics)]

    def heartbeat(self) -> None:
        self._reader.heartbeat()

    def stats(self) -> dict[str, int]:
        return {"ring_lost": self._reader.lost, "ring_unreleased": len(self._pending)}

    def close(self, for_good: bool) -> None:
        keep_in_ring(out.message for out in self._pending)  # not sent: read again by the next run
        self._pending.clear()
        if for_good:
            self._reader.detach()
        self._reader.close()
