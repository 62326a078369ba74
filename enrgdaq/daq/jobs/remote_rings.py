"""A bridge's side of the node's rings: store payloads of this node's producers, sent as bytes.

A ring slot is a place in this machine's memory; what crosses to another node is the message
itself, encoded for the wire (an Arrow table as one Arrow IPC stream frame, raw bytes as they
are). The bridge is a consumer of every producer's ring (the routes list it under ``"*"``), so
a payload waits in the ring while the peer cannot take it (not connected, or its queue full):
the ring is the bridge's buffer, and when it is full the producer's ring policy applies
(``block`` holds the producer; ``drop`` drops and counts).

A slot is given back once the receiving node has the payload (:mod:`.remote_inflight`). Each
payload is stamped with numbers that are the same in every run of the bridge (its ring's id,
its place in the ring, the place of the one sent before it on that topic), and sent again, in
order, when the peer lost it; the receiver drops what it has. So a payload crosses once across
a kill -9 of either bridge. Without Redis a slot is given back once its message is handed to
the socket.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from enrgdaq.daq.jobs.remote_inflight import Inflight, Outgoing
from enrgdaq.daq.store.retry import keep_in_ring
from enrgdaq.data import layout as L
from enrgdaq.data.reader import RingReader
from enrgdaq.data.ring import Ring
from enrgdaq.message.acks import AckBoard, ring_sender
from enrgdaq.message.bridge import BridgeFilter
from enrgdaq.message.sequence import Stamper, chained
from enrgdaq.message.wire import Encoder

logger = logging.getLogger(__name__)

SCAN_SECONDS = 0.5
"""How often new rings (a producer that started) are looked for."""
BATCH = 256
"""Payloads taken from one ring per turn (the bridge's other sockets are served between turns)."""
STALL_SECONDS = 10.0
"""A peer that takes nothing for this long (away, or nothing acknowledged) no longer holds this
node's producers back: the bridge stops saying it is alive in their rings, which evict it after
``ring_consumer_timeout_seconds``; what it misses from then on is counted (``ring_lost``)."""


class RingPayloads:
    """The rings one bridge reads (see the module)."""

    def __init__(
        self, consumer: str, run_dir: str, bridge_filter: BridgeFilter, board: AckBoard | None = None
    ) -> None:
        self._reader = RingReader(consumer, run_dir)
        self._filter = bridge_filter
        self._inflight = None if board is None else Inflight(board, consumer)
        self._encoder = Encoder()
        self._stamper = Stamper()
        self._senders: dict[tuple[str, int], bytes] = {}
        self._next_scan = 0.0
        self._pending: list[Outgoing] = []  # taken, not yet handed to the peer (its queue was full)
        self._peer_was_ready = False
        self._peer_seen = time.monotonic()
        self.stalled = False

    @property
    def reading(self) -> bool:
        return bool(self._reader.trackers)

    def forward(self, socket: zmq.Socket, peer_ready: bool) -> bool:
        """Send what waits in the rings while the peer takes it; True if anything was sent."""
        now = time.monotonic()
        self._check_stall(now, peer_ready)
        if now >= self._next_scan:
            self._reader.scan()
            self.heartbeat()
            self._next_scan = now + SCAN_SECONDS
        inflight = self._inflight
        if inflight is not None:
            again = inflight.rewind("the peer is back") if peer_ready and not self._peer_was_ready else []
            again = again or inflight.poll(now)
            self._pending = again + self._pending
        self._peer_was_ready = peer_ready
        if not peer_ready:
            return False
        if not self._pending and not self.stalled:
            self._pending = [Outgoing(m) for m in self._reader.drain(limit=BATCH)]
        sent = 0
        while self._pending:
            out = self._pending[0]
            if out.parts is None:
                out.parts = self._parts(out) if self._filter.leaves(out.message) else []
            if not out.send(socket):
                break  # the peer's queue is full: the rest waits (in memory, in its slots)
            self._sent(self._pending.pop(0), now)
            sent += 1
        return sent > 0

    def _parts(self, out: Outgoing) -> list[list[Any]]:
        """The message once per topic, stamped once with its ring's id, its place in the ring and
        (with acknowledgements) the place of the one sent before it on that topic: sent again (a
        full queue, a peer back, a run after a kill, another link), it keeps its numbers."""
        message = out.message
        frames = self._encoder.encode(message)
        out.topics = tuple(sorted(message.topics))
        guard = getattr(message, "__dict__", {}).get("_ring_guard")
        if guard is None:  # a copy (holds no slot)
            return [[self._stamper.frame(topic), *frames] for topic in out.topics]
        sender = out.sender = self._sender(guard.tracker.ring)
        seq = out.seq = guard.seq + 1
        inflight = self._inflight
        return [
            [chained(topic, sender, seq, inflight.previous(sender, topic, seq) if inflight else 0), *frames]
            for topic in out.topics
        ]

    def _sender(self, ring: Ring) -> bytes:
        key = (ring.name, ring.inode)
        found = self._senders.get(key)
        if found is None:
            created = ring.word(L.CREATED_NS_W)
            found = self._senders[key] = ring_sender(self._filter.node, ring.name, ring.inode, created)
        return found

    def _sent(self, out: Outgoing, now: float) -> None:
        """Handed to the socket: given back now, or kept until the peer has it."""
        if self._inflight is None or not out.sender or not out.parts:
            out.release()
        else:
            self._inflight.add(out, now)

    def _check_stall(self, now: float, peer_ready: bool) -> None:
        if peer_ready:
            self._peer_seen = now
        inflight = self._inflight
        unacked = inflight is not None and inflight.count > 0 and now - inflight.last_ack > STALL_SECONDS
        stalled = now - self._peer_seen > STALL_SECONDS or unacked
        if stalled != self.stalled:
            self.stalled = stalled
            if stalled:
                self._own_everything()
            logger.warning(
                "[%s] %s",
                self._reader.consumer,
                f"the peer took nothing for {STALL_SECONDS:g} s: no longer holding this node's producers "
                "(their rings drop this bridge after ring_consumer_timeout_seconds; what it misses is "
                "counted)"
                if stalled
                else "the peer takes payloads again",
            )

    def _own_everything(self) -> None:
        """A stalled peer: what waits for it is copied out of the rings, whose slots go back (the
        rings may soon drop this bridge and reuse them); it is sent from memory when the peer is back."""
        waiting = (self._inflight.outgoing() if self._inflight else []) + self._pending
        for out in waiting:
            if out.parts is None:
                out.parts = self._parts(out) if self._filter.leaves(out.message) else []
            out.own_parts()

    def heartbeat(self) -> None:
        """Say this bridge is alive in the rings it reads, unless its peer takes nothing (then
        the rings drop it in time, and their producers go on)."""
        if not self.stalled:
            self._reader.heartbeat()

    def stats(self) -> dict[str, int]:
        inflight = self._inflight
        return {
            "ring_lost": self._reader.lost,
            "ring_unreleased": len(self._pending) + (inflight.count if inflight else 0),
            "bridge_resent": inflight.resent if inflight else 0,
        }

    def close(self, for_good: bool) -> None:
        # Not sent, or not acknowledged: read (and sent) again by the next run, same numbers;
        # what was copied out of the rings for a stalled peer is lost with this run (counted).
        waiting = (self._inflight.outgoing() if self._inflight else []) + self._pending
        keep_in_ring(out.message for out in waiting if not out.released)
        lost = sum(1 for out in waiting if out.released and out.parts)
        if lost:
            logger.warning(
                "[%s] %d payload(s) for the stalled peer are lost with this run", self._reader.consumer, lost
            )
        if self._inflight is not None:
            self._inflight.clear()
        self._pending.clear()
        if for_good:
            self._reader.detach()
        self._reader.close()
