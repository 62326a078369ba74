"""How store messages go into ring slots and come back (the ring itself knows no message classes).

A table message travels as its header (msgpack, the table as nil) and its
table; a raw message as its header (``data`` empty) and its bytes; any other
store message (a tabular one: its rows are in its header) as its header alone.
A message read from a ring keeps the slot's hold until :meth:`release`
(``DAQJobMessageStore.release``), so a store gives slots back only once it is
done with what they held. Installed as the data plane's codec by
:mod:`enrgdaq.daq.store.models`; see :mod:`enrgdaq.data.codec`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw
from enrgdaq.data.codec import Join
from enrgdaq.errors import MessageError
from enrgdaq.message.wire import MessageTypes


def _no_payload(obj: Any) -> Any:
    """Encodes the table of a message as nil: its buffers travel beside the header."""
    if isinstance(obj, pa.Table):
        return None
    raise MessageError(f"cannot put a value of type {type(obj).__name__} in a ring slot")


class StoreSlotCodec:
    """Splits store messages into slot parts and joins them back. One per ring writer or reader."""

    def __init__(self, types: MessageTypes | None = None) -> None:
        self._types = types or MessageTypes()
        self._header = msgspec.msgpack.Encoder(enc_hook=_no_payload)

    def split(self, message: Any) -> tuple[str, bytes, Any]:
        if isinstance(message, DAQJobMessageStorePyArrow) and message.table is not None:
            return type(message).__name__, self._header.encode(message), message.table
        if isinstance(message, DAQJobMessageStoreRaw):
            data = message.data
            message.data = b""
            try:
                header = self._header.encode(message)
            finally:
                message.data = data
            return type(message).__name__, header, data
        return type(message).__name__, self._header.encode(message), None

    def joiner(self, type_name: str) -> Join:
        cls = self._types.get(type_name)
        if not issubclass(cls, DAQJobMessageStore):
            raise MessageError(f"a {type_name} does not travel through rings")
        decode = msgspec.msgpack.Decoder(cls).decode
        if issubclass(cls, DAQJobMessageStorePyArrow):
            return _table_joiner(decode)
        if issubclass(cls, DAQJobMessageStoreRaw):
            return _raw_joiner(decode)
        return _header_joiner(decode)


def _table_joiner(decode: Any) -> Join:
    def join(header: memoryview, payload: Any, hold: object | None) -> Any:
        message = decode(header)
        if payload is not None:
            if not isinstance(payload, pa.Table):
                raise MessageError("a table message whose slot holds no table")
            message.table = payload
        if hold is not None:
            message._ring_guard = hold
        return message

    return join


def _raw_joiner(decode: Any) -> Join:
    def join(header: memoryview, payload: Any, hold: object | None) -> Any:
        message = decode(header)
        if not isinstance(payload, bytes):
            raise MessageError("a raw message whose slot holds no bytes")
        message.data = payload
        if hold is not None:
            message._ring_guard = hold
        return message

    return join


def _header_joiner(decode: Any) -> Join:
    def join(header: memoryview, payload: Any, hold: object | None) -> Any:
        if payload is not None:
            raise MessageError("a header-only message whose slot holds a payload")
        message = decode(header)
        if hold is not None:
            message._ring_guard = hold
        return message

    return join


class SplicedHeader:
    """The slot header of one template message, remade per payload with a fresh ``id`` and
    ``timestamp`` (every other field is the template's): the fields are encoded once, and per
    payload only those two (msgpack maps keep the struct's field order, and ``id`` and
    ``timestamp`` come first in every message). :func:`spliced_header` checks the layout and
    gives None where it does not hold (the caller then encodes whole messages)."""

    def __init__(self, front: bytes, middle: bytes, rest: bytes) -> None:
        self._front, self._middle, self._rest = front, middle, rest
        self._encode = msgspec.msgpack.Encoder().encode

    def make(self, message_id: str, timestamp: object) -> bytes:
        encode = self._encode
        return b"".join((self._front, encode(message_id), self._middle, encode(timestamp), self._rest))


def spliced_header(template: DAQJobMessageStore) -> SplicedHeader | None:
    """A :class:`SplicedHeader` of ``template`` (its payload field empty), or None."""
    encoder = msgspec.msgpack.Encoder(enc_hook=_no_payload)
    full = encoder.encode(template)
    id_part, ts_part = encoder.encode(template.id), encoder.encode(template.timestamp)
    middle = encoder.encode("timestamp")
    front = full[:1] + encoder.encode("id")
    rest_at = len(front) + len(id_part) + len(middle) + len(ts_part)
    spliced = SplicedHeader(front, middle, full[rest_at:])
    if spliced.make(template.id or "", template.timestamp) != full:
        return None
    return spliced
