"""The wire format of the message plane: ``[topic, type, header, *buffers]``.

* ``topic``: see :mod:`enrgdaq.daq.topics` (terminated, so prefixes cannot collide),
  followed by a sequence stamp (:mod:`enrgdaq.message.sequence`);
* ``type``: the message class name, looked up among the known
  ``DAQJobMessage`` subclasses; an unknown name is an error, never an import;
* ``header``: the message struct as msgpack (msgspec);
* ``buffers``: bulk payloads out of band. An Arrow table travels as one Arrow
  IPC stream frame and is read back zero-copy from the received frame.

Nothing is pickled: a frame from the network can at worst fail to decode,
which the receiver counts and drops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.errors import MessageError

_BUFFER_TAG = "__oob__"


def _known_message_types() -> dict[str, type[DAQJobMessage]]:
    found: dict[str, type[DAQJobMessage]] = {}
    pending: list[type[DAQJobMessage]] = [DAQJobMessage]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


class MessageTypes:
    """Message class by name; refreshed from the class tree when a name is missing.

    Custom message classes only need to be imported in the receiving process
    (which a job that accepts them does anyway).
    """

    def __init__(self) -> None:
        self._types = _known_message_types()

    def get(self, name: str) -> type[DAQJobMessage]:
        cls = self._types.get(name)
        if cls is None:
            self._types = _known_message_types()
            cls = self._types.get(name)
        if cls is None:
            raise MessageError(f"unknown message type {name!r}")
        return cls


class Encoder:
    """Turns a message into frames. One instance per sending thread."""

    def __init__(self) -> None:
        self._buffers: list[Any] = []
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)

    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, pa.Table):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, obj.schema) as writer:
                writer.write_table(obj)
            self._buffers.append(sink.getvalue())
            return {_BUFFER_TAG: len(self._buffers) - 1}
        raise MessageError(f"cannot send a value of type {type(obj).__name__}")

    def encode(self, message: DAQJobMessage) -> list[Any]:
        """``[type, header, *buffers]`` for ``message`` (topic frame not included)."""
        self._buffers = []
        header = self._encoder.encode(message)
        buffers, self._buffers = self._buffers, []
        return [type(message).__name__.encode(), header, *buffers]


class Decoder:
    """Turns received frames back into a message. One instance per receiving thread."""

    def __init__(self, types: MessageTypes | None = None) -> None:
        self._types = types or MessageTypes()
        self._decoders: dict[type[DAQJobMessage], msgspec.msgpack.Decoder[Any]] = {}
        self._frames: Sequence[Any] = ()

    def _dec_hook(self, target: type, obj: Any) -> Any:
        if target is pa.Table and isinstance(obj, dict) and _BUFFER_TAG in obj:
            index = obj[_BUFFER_TAG]
            if not isinstance(index, int) or not 0 <= index < len(self._frames):
                raise MessageError("buffer index out of range")
            frame = self._frames[index]
            data = frame.buffer if hasattr(frame, "buffer") else frame
            return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        raise MessageError(f"cannot decode a value of type {target.__name__}")

    def _decoder_for(self, cls: type[DAQJobMessage]) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = msgspec.msgpack.Decoder(cls, dec_hook=self._dec_hook)
            self._decoders[cls] = decoder
        return decoder

    def decode(self, frames: Sequence[Any]) -> DAQJobMessage:
        """Decode ``[type, header, *buffers]``; raises :class:`MessageError` on anything malformed."""
        if len(frames) < 2:
            raise MessageError(f"expected at least 2 frames, got {len(frames)}")
        try:
            name = bytes(frames[0]).decode("ascii")
            cls = self._types.get(name)
            self._frames = frames[2:]
            message = self._decoder_for(cls).decode(frames[1])
        except MessageError:
            raise
        except (msgspec.DecodeError, UnicodeDecodeError, pa.ArrowException, OSError, ValueError) as exc:
            raise MessageError(f"malformed message: {exc}") from exc
        finally:
            self._frames = ()
        if not isinstance(message, DAQJobMessage):
            raise MessageError("decoded object is not a message")
        return message
