"""Acknowledgements between the bridges of two nodes, on the Redis the nodes share.

A bridge that sends a ring payload to another node keeps its ring slot until the receiving
node says that it has the payload (committed into its own ring, where a kill of the receiving
bridge cannot take it). Until then the sender may send it again (the receiver drops what it
already has: :mod:`enrgdaq.message.seen`), so a payload crosses once even when the receiving
bridge is killed with messages on the wire.

The acknowledgements go through Redis, not back over the data link, because a link may be
one-way (``remote.toml`` without ``zmq_proxy_sub_urls``), and every node of a system shares
one Redis (docs/nodes.md). One hash per sending stream id: field = wire topic, value = the
last sequence number the receiver has. Bridges write it at most every ``ACK_SECONDS``.

A receiver that sees a gap (the connecting end of a ZMQ link keeps its queue across a
reconnect, so after the peer's restart newer payloads arrive before the lost ones are sent
again) asks for the rest at once: field :data:`GAP` set to the time it saw it.

Without a reachable Redis a bridge falls back to giving slots back once handed to the socket
(what was on the wire when a peer died is then lost), and says so.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis

from enrgdaq.control.keys import PREFIX

ACK_SECONDS = 0.005
"""How often a receiving bridge writes what it has, and a sending one reads it (while waiting)."""
GAP = "!gap"
"""The field a receiver sets (nanoseconds, wall clock) when it dropped a payload after a gap."""
GAP_EVERY_SECONDS = 0.5
"""A receiver asks again, and a sender sends again for a gap, at most this often."""
ACK_TTL_SECONDS = 7 * 86400
"""A sender's acknowledgements are forgotten a week after the last one (a ring replaced, a node gone)."""


def ack_key(sender: bytes) -> str:
    return f"{PREFIX}:bridge-acks:{sender.hex()}"


def ring_sender(node: str, ring_name: str, inode: int, created_ns: int) -> bytes:
    """The stream id a bridge stamps on one ring's payloads: the same in every run of the bridge
    (a payload sent again after a restart keeps its number), another for a ring file made anew
    (its inode and creation time: a number of an old file's is never taken for the new one's)."""
    key = f"{node}\0{ring_name}\0{inode}\0{created_ns}"
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


class AckBoard:
    """The shared board of acknowledgements (a Redis client; ``None``-safe construction in
    :meth:`open`)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @classmethod
    def open(
        cls, log: logging.Logger | logging.LoggerAdapter[Any], url: str | None = None
    ) -> AckBoard | None:
        from enrgdaq.control.connection import connect, redact
        from enrgdaq.settings import redis_url

        where = url or redis_url(None)
        client = connect(where)
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            log.warning(
                "no Redis at %s (%s): payloads sent to the peer are given back at once, so what is on "
                "the wire when the peer dies is lost",
                redact(where),
                exc,
            )
            return None
        return cls(client)

    def publish(self, taken: dict[tuple[bytes, str], int], gaps: dict[bytes, int] | None = None) -> None:
        """Say what this node has: (sender, wire topic) -> last sequence number; and ask the
        senders in ``gaps`` (sender -> when) for what it lost."""
        if not taken and not gaps:
            return
        by_sender: dict[bytes, dict[str, int]] = {}
        for (sender, topic), seq in taken.items():
            by_sender.setdefault(sender, {})[topic] = seq
        for sender, when in (gaps or {}).items():
            by_sender.setdefault(sender, {})[GAP] = when
        with self._redis.pipeline(transaction=False) as pipe:
            for sender, fields in by_sender.items():
                pipe.hset(ack_key(sender), mapping=fields)  # type: ignore[arg-type]
                pipe.expire(ack_key(sender), ACK_TTL_SECONDS)
            pipe.execute()

    def fetch(self, senders: list[bytes]) -> dict[bytes, dict[str, int]]:
        """What the receivers have of each sender's streams: sender -> wire topic -> sequence number."""
        with self._redis.pipeline(transaction=False) as pipe:
            for sender in senders:
                pipe.hgetall(ack_key(sender))
            replies = pipe.execute()
        return {
            sender: {topic: int(seq) for topic, seq in reply.items()}
            for sender, reply in zip(senders, replies, strict=True)
        }

    def close(self) -> None:
        self._redis.close()
