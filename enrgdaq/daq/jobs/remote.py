"""The original's bridge jobs between nodes: ``DAQJobRemoteProxy`` listens, ``DAQJobRemote`` connects.

``DAQJobRemoteProxy`` (remote_proxy.toml) is the end other nodes connect to: remote publishers
send into ``zmq_xsub_url``, remote subscribers read from ``zmq_xpub_url``. ``DAQJobRemote``
(remote.toml) is the other end: it publishes this node's messages to a proxy's
``zmq_proxy_pub_url`` and takes the proxy side's from ``zmq_proxy_sub_urls``. Both move the
messages of ``topics`` (default: store messages) both ways between the peer and the local
proxy, with the checks of :mod:`enrgdaq.message.bridge` (each message crosses once, none
loops, malformed ones are dropped and counted).

With ``secret_key_file`` and ``authorized_keys_dir`` (``enrgdaq keys generate``) the proxy
speaks CURVE and lets in only the listed client keys; without them it binds the loopback
interface only, whatever address the file names, and says so. See docs/bridges.md.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import redis
import zmq

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.remote_intake import open_seen_log
from enrgdaq.daq.jobs.remote_rings import RingPayloads
from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.outbox import ROUTES_GRACE_SECONDS, targets_of
from enrgdaq.daq.store.models import DAQJobMessageStore
from enrgdaq.daq.store.routing import store_names_of_topics
from enrgdaq.errors import ConfigError
from enrgdaq.message.acks import ACK_SECONDS, GAP_EVERY_SECONDS, AckBoard
from enrgdaq.message.bridge import BridgeFilter, Inbound
from enrgdaq.message.curve import CurveServer, loopback_only, secure_client
from enrgdaq.message.sequence import Stamper

POLL_MS = 100
RING_POLL_MS = 2
SEND_HWM = 10_000
SEND_BUFFER_BYTES = 64 * 2**20
"""What the socket towards the peer may queue, in bytes: ring payloads beyond it wait in their rings."""
STATS_EVERY = 50
INBOUND_EVERY = 20  # polls between two updates of the job's counters
RECONNECT_MS, RECONNECT_MAX_MS = 100, 5000
"""A lost peer is tried again after 0.1 s, then less and less often, down to every 5 s."""


class DAQJobRemoteProxyConfig(DAQJobConfig, kw_only=True):
    """``zmq_xsub_url``: where other nodes publish in; ``zmq_xpub_url``: where they subscribe.
    ``topics``: topic prefixes that cross (both ways). ``secret_key_file`` (this node's
    ``.key_secret``) with ``authorized_keys_dir`` (the ``.key`` files of the nodes let in)
    turn CURVE on; without them both URLs are bound to 127.0.0.1."""

    zmq_xsub_url: str
    zmq_xpub_url: str
    topics: list[str] = msgspec.field(default_factory=lambda: ["store."])
    secret_key_file: str | None = None
    authorized_keys_dir: str | None = None


class DAQJobRemoteConfig(DAQJobConfig, kw_only=True):
    """``zmq_proxy_pub_url``: the peer proxy's ``zmq_xsub_url``; ``zmq_proxy_sub_urls``: its
    ``zmq_xpub_url`` (one or more peers). ``secret_key_file`` (this node's ``.key_secret``) with
    ``server_public_key_file`` (the peer's ``.key``) for a CURVE peer."""

    zmq_proxy_pub_url: str
    zmq_proxy_sub_urls: list[str] = []
    topics: list[str] = msgspec.field(default_factory=lambda: ["store."])
    secret_key_file: str | None = None
    server_public_key_file: str | None = None


class _Bridge(DAQJob):
    """The loop both ends share: peer -> local proxy, local proxy -> peer, through one filter;
    and the node's rings -> peer (the bridge is a consumer of every producer's ring, listed in
    the routes under ``"*"``: store payloads that live in rings cross as bytes).

    A store payload from the peer is committed into this bridge's own ring for this node's
    stores, and only then acknowledged on the shared Redis (:mod:`enrgdaq.message.acks`); what
    was taken is kept in a file of the run directory (:mod:`enrgdaq.message.seen`), so that a
    run after a kill -9 drops what the peer sends again."""

    config: Any
    _receive_on_thread = False

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._filter = BridgeFilter(self.supervisor_info.supervisor_id)
        self._rings: RingPayloads | None = None
        self._board: AckBoard | None = None
        self._next_acks = 0.0
        self._local_stamps = Stamper()
        self._undone_said = 0
        self._asked: dict[bytes, float] = {}  # sender -> when it may be asked again for a gap
        self._peer_subscriptions = 0  # the peer's subscriptions on our sending socket: 0, it is away

    def start(self) -> None:
        if not (self.zmq_xpub_url and self.zmq_xsub_url):
            raise ConfigError(
                f"{type(self).__name__} needs the node's message plane (run it under a supervisor)"
            )
        context = zmq.Context()
        sockets: list[zmq.Socket] = []
        self._board = AckBoard.open(self._logger)
        try:
            self._open_rings()
            local_sub = _socket(context, zmq.SUB, sockets)
            local_sub.connect(self.zmq_xpub_url)
            for topic in self.config.topics:
                local_sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
            local_pub = _socket(context, zmq.PUB, sockets)
            local_pub.connect(self.zmq_xsub_url)
            from_peer, to_peer = self._peer_sockets(context, sockets)
            self._pump(local_sub, local_pub, from_peer, to_peer)
        finally:
            for socket in sockets:
                socket.close(linger=0)
            self._close_security()
            context.term()
            self._filter.seen.close()
            if self._board is not None:
                self._board.close()

    def _open_rings(self) -> None:
        """With the data plane: read the node's rings, and keep what was taken in the node's
        table (shared by its bridges, kept across a kill)."""
        settings = self._data_plane
        if settings is None or not settings.enabled:
            return
        self._rings = RingPayloads(self.unique_id, settings.run_dir, self._filter, self._board)
        self._filter.seen = open_seen_log(settings.run_dir, self._writer().name)

    def _peer_sockets(self, context: zmq.Context, sockets: list[zmq.Socket]) -> tuple[zmq.Socket, zmq.Socket]:
        raise NotImplementedError

    def _close_security(self) -> None:
        pass

    def _pump(
        self, local_sub: zmq.Socket, local_pub: zmq.Socket, from_peer: zmq.Socket, to_peer: zmq.Socket
    ) -> None:
        poller = zmq.Poller()
        for socket in (local_sub, to_peer):
            poller.register(socket, zmq.POLLIN)
        polls, taking = 0, False
        while not self._has_been_freed:
            if not taking and self._may_take():
                poller.register(from_peer, zmq.POLLIN)
                taking = True
            busy = self._rings is not None and self._rings.forward(to_peer, self._peer_subscriptions > 0)
            ready = dict(poller.poll(0 if busy else self._poll_ms()))
            if local_sub in ready:
                for frames in _drain(local_sub):
                    if self._filter.outbound(frames):
                        self._to_peer(to_peer, frames)
            if from_peer in ready:
                with self._filter.seen.locked():
                    for frames in _drain(from_peer):
                        inbound = self._filter.inbound(frames)
                        if inbound is not None:
                            self._take(inbound, frames, local_pub)
                self._say_undone()
            if to_peer in ready:
                for frames in _drain(to_peer):  # the peers' (un)subscriptions: is anyone there?
                    first = frames[0].bytes[:1]
                    self._peer_subscriptions += 1 if first == b"\x01" else -1 if first == b"\x00" else 0
            polls += 1
            if polls % INBOUND_EVERY == 0 or not busy:
                self._process_inbound(timeout_ms=0)  # routes, stop requests
            if polls % STATS_EVERY == 0:
                self._count()
            self._publish_acks()
        self._count()
        self._publish_acks(final=True)

    def _say_undone(self) -> None:
        undone = self._filter.seen.undone
        if undone > self._undone_said:
            self._undone_said = undone
            self._logger.info("%d payload(s) a killed bridge had not handed on: taken again", undone)

    def _may_take(self) -> bool:
        """Whether to read from the peer: with a data plane, once this node's routes are known
        (a payload then goes into the ring for its stores, not inline to stores that may not
        listen yet), or after the grace a new producer gets."""
        settings = self._data_plane
        if settings is None or not settings.enabled or self.routes is not None:
            return True
        return time.monotonic() - self._started_monotonic > ROUTES_GRACE_SECONDS

    def _take(self, inbound: Inbound, frames: list[Any], local_pub: zmq.Socket) -> None:
        """Hand a message from the peer on (into the ring, else inline) and record it as taken."""
        if self._into_ring(inbound):
            return
        # Stamped anew: on this node's plane the bridge is the publisher (its subscribers count
        # the gaps of its numbers, not those of a stream of the peer's they see a part of).
        local_pub.send_multipart([self._local_stamps.frame(inbound.topic), *frames[1:]], copy=False)
        if inbound.stream is not None:
            self._filter.seen.take(inbound.stream, inbound.seq)

    def _into_ring(self, inbound: Inbound) -> bool:
        """A store payload from the peer goes into this bridge's ring for this node's stores of the
        class of the topic it came on (a ring gives backpressure: while the stores are behind, the
        bridge stops reading from the peer, whose payloads then wait in its rings); False: send it
        inline (no store here takes it, routes not known yet, larger than a slot). Its sender
        stays its origin."""
        message = inbound.message
        if not isinstance(message, DAQJobMessageStore) or not self._ring_takes(message):
            return False
        names = store_names_of_topics({inbound.topic})
        targets = targets_of(names, self.routes, self.stores_not_running, local_only=True)
        if not targets.wanted:
            return False
        if inbound.stream is None:
            return self._write_to_ring(message, targets.wanted)
        seen = self._filter.seen
        seen.begin(inbound.stream, inbound.seq, self._writer().ring.write_seq)
        if self._write_to_ring(message, targets.wanted):
            seen.settle(inbound.stream, inbound.seq)
            return True
        seen.undo(inbound.stream)
        return False

    def _publish_acks(self, final: bool = False) -> None:
        """Tell the senders what this node has (at most every ``ACK_SECONDS``)."""
        now = time.monotonic()
        if self._board is None or (now < self._next_acks and not final):
            return
        self._next_acks = now + ACK_SECONDS
        taken = self._filter.seen.changed()
        gaps = self._gap_requests(now)
        try:
            self._board.publish(taken, gaps)
        except redis.RedisError as exc:
            self._filter.seen.requeue(taken)
            self._next_acks = now + 1.0
            self._logger.warning("cannot write acknowledgements (tried again in 1 s): %s", exc)

    def _to_peer(self, to_peer: zmq.Socket, frames: list[Any]) -> None:
        """An inline message to the peer; one it cannot take now (away, queue full) is dropped and
        counted (inline messages are the documented exception to lossless; ring payloads wait)."""
        try:
            to_peer.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._filter.counts.forwarded_out -= 1
            self._filter.counts.dropped += 1

    def _send_hwm(self) -> int:
        """Messages the peer's queue may hold: ``SEND_BUFFER_BYTES`` worth of ring slots."""
        settings = self._data_plane
        if settings is None or not settings.enabled:
            return SEND_HWM
        return max(4, min(SEND_HWM, SEND_BUFFER_BYTES // settings.slot_bytes))

    def _poll_ms(self) -> int:
        """Idle: with rings to read, look at them again soon (producers send a bridge no wake-ups);
        with acknowledgements to write, when they are due (the sender waits for them)."""
        if (self._rings is not None and self._rings.reading) or self._filter.seen.has_changed:
            return RING_POLL_MS
        return POLL_MS

    def _count(self) -> None:
        counts = self._filter.counts
        self.counters.sent = counts.forwarded_out
        self.counters.processed = counts.forwarded_in
        self.counters.rejected = counts.duplicates + counts.malformed + counts.after_gap
        self.counters.dropped = counts.dropped

    def _gap_requests(self, now: float) -> dict[bytes, int]:
        """The senders to ask for what was lost (each at most every ``GAP_EVERY_SECONDS``)."""
        gaps, self._filter.gaps = self._filter.gaps, {}
        due = {sender: when for sender, when in gaps.items() if self._asked.get(sender, 0.0) <= now}
        for sender in due:
            self._asked[sender] = now + GAP_EVERY_SECONDS
        return due

    # -- the rings: store payloads of this node's producers, sent on as bytes ----------------
    def ring_heartbeat(self) -> None:
        if self._rings is not None:
            self._rings.heartbeat()

    def data_plane_stats(self) -> dict[str, int]:
        stats = super().data_plane_stats()
        if self._rings is not None:
            stats.update(self._rings.stats())
        return stats

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        if self._rings is not None:
            self._rings.close(for_good)
            self._rings = None


class DAQJobRemoteProxy(_Bridge):
    config_type = DAQJobRemoteProxyConfig
    config: DAQJobRemoteProxyConfig

    def _peer_sockets(self, context: zmq.Context, sockets: list[zmq.Socket]) -> tuple[zmq.Socket, zmq.Socket]:
        cfg = self.config
        self._curve: CurveServer | None = None
        xsub_url, xpub_url = cfg.zmq_xsub_url, cfg.zmq_xpub_url
        if cfg.secret_key_file or cfg.authorized_keys_dir:
            if not (cfg.secret_key_file and cfg.authorized_keys_dir):
                raise ConfigError("give both secret_key_file and authorized_keys_dir (or neither)")
            self._curve = CurveServer(context, cfg.secret_key_file, cfg.authorized_keys_dir, self.unique_id)
        else:
            xsub_url, xpub_url = loopback_only(xsub_url), loopback_only(xpub_url)
            if (xsub_url, xpub_url) != (cfg.zmq_xsub_url, cfg.zmq_xpub_url):
                self._logger.warning(
                    "no CURVE keys (secret_key_file, authorized_keys_dir): listening on 127.0.0.1 only "
                    "(%s, %s); make keys with 'enrgdaq keys generate' to accept other machines",
                    xsub_url,
                    xpub_url,
                )
        from_peer = _socket(context, zmq.SUB, sockets)
        to_peer = _sender(context, sockets, self._send_hwm())
        for socket in (from_peer, to_peer):
            if self._curve is not None:
                self._curve.secure(socket)
        from_peer.setsockopt(zmq.SUBSCRIBE, b"")
        from_peer.bind(xsub_url)
        to_peer.bind(xpub_url)
        self._logger.info(
            "bridge listening (%s): publishers into %s, subscribers on %s",
            "CURVE, keys of " + str(cfg.authorized_keys_dir) if self._curve is not None else "no keys",
            xsub_url,
            xpub_url,
        )
        return from_peer, to_peer

    def _close_security(self) -> None:
        curve = getattr(self, "_curve", None)
        if curve is not None:
            curve.stop()


class DAQJobRemote(_Bridge):
    config_type = DAQJobRemoteConfig
    config: DAQJobRemoteConfig

    def _peer_sockets(self, context: zmq.Context, sockets: list[zmq.Socket]) -> tuple[zmq.Socket, zmq.Socket]:
        cfg = self.config
        if bool(cfg.secret_key_file) != bool(cfg.server_public_key_file):
            raise ConfigError("give both secret_key_file and server_public_key_file (or neither)")
        from_peer = _socket(context, zmq.SUB, sockets)
        to_peer = _sender(context, sockets, self._send_hwm())
        for socket in (from_peer, to_peer):
            if cfg.secret_key_file and cfg.server_public_key_file:
                secure_client(socket, cfg.secret_key_file, cfg.server_public_key_file)
        for topic in cfg.topics:
            from_peer.setsockopt(zmq.SUBSCRIBE, topic.encode())
        for url in cfg.zmq_proxy_sub_urls:
            from_peer.connect(url)
        to_peer.connect(cfg.zmq_proxy_pub_url)
        self._logger.info(
            "bridge to %s (publishing) and %s (subscribed to %s)",
            cfg.zmq_proxy_pub_url,
            ", ".join(cfg.zmq_proxy_sub_urls) or "nothing",
            ", ".join(cfg.topics),
        )
        return from_peer, to_peer


def _socket(context: zmq.Context, kind: int, sockets: list[zmq.Socket]) -> zmq.Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
    sockets.append(socket)
    return socket


def _sender(context: zmq.Context, sockets: list[zmq.Socket], hwm: int = SEND_HWM) -> zmq.Socket:
    """The socket towards the peer: an XPUB (it sees whether a peer subscribes: nobody there, ring
    payloads wait in their rings) that never drops silently (a full queue says so)."""
    socket = _socket(context, zmq.XPUB, sockets)
    socket.setsockopt(zmq.XPUB_NODROP, 1)
    socket.setsockopt(zmq.SNDHWM, hwm)
    return socket


def _drain(socket: zmq.Socket, most: int = 1000) -> Any:
    for _ in range(most):
        try:
            yield socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
