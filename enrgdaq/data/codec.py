"""What a ring slot carries, and who turns messages into it and back.

The data plane knows no message classes: a slot holds a type name, a header
(bytes the layer above encoded, msgpack in practice) and at most one payload,
an Arrow table or raw bytes. A :class:`SlotCodec` of the layer above splits its
messages into these parts and joins them back. The job layer installs its
codec (:mod:`enrgdaq.daq.store.slot_codec`) when its store messages are
defined; ``RingWriter`` and ``RingReader`` use the installed one unless given
another. Keeping it this way round lets the ring be tested, benchmarked and
reused without the job layer, and keeps the job layer's message classes out
of the ring's format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from enrgdaq.errors import DAQError

Join = Callable[[memoryview, Any, object | None], Any]
"""Builds one message from ``(header, payload, hold)``.

``payload`` is a ``pyarrow.Table`` (zero-copy over the slot), ``bytes`` (a copy)
or None (header only). ``hold`` keeps the slot from being reused: the message
keeps a reference to it until the consumer is done with the message (None: the
payload is a copy and nothing needs holding). Raises ``MessageError`` (or a
``msgspec``/``ValueError``/``TypeError`` the reader turns into one) when the
parts are not a message of that type.
"""


class SlotCodec(Protocol):
    """How the layer above turns its messages into slot parts and back. One per thread."""

    def split(self, message: Any) -> tuple[str, bytes, Any]:
        """``(type name, header, payload)``; payload: a ``pyarrow.Table``, a bytes-like
        buffer or None. Raises ``MessageError`` when the message cannot travel in a slot."""
        ...

    def joiner(self, type_name: str) -> Join:
        """The builder of messages of ``type_name`` (asked once per slot layout, then cached).

        Raises ``MessageError`` for a name that may not come out of a ring.
        """
        ...


_factory: Callable[[], SlotCodec] | None = None


def install_codec(factory: Callable[[], SlotCodec]) -> None:
    """Make ``factory`` the source of the codec that writers and readers use by default."""
    global _factory
    _factory = factory


def default_codec() -> SlotCodec:
    """A new instance of the installed codec (each writer and reader keeps its own)."""
    if _factory is None:
        raise DAQError(
            "no slot codec installed: import enrgdaq.daq.store.models (it installs the store "
            "messages' codec) or pass a codec to RingWriter / RingReader"
        )
    return _factory()
