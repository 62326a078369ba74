"""The wire format: ``[type, header, *buffers]`` in msgpack and Arrow IPC, never pickle."""

from __future__ import annotations

import os
import pickle

import msgspec
import pyarrow as pa
import pytest

from enrgdaq.daq.models import DAQJobMessageStop
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
)
from enrgdaq.errors import MessageError
from enrgdaq.message.wire import Decoder, Encoder


def csv_config(path: str = "data.csv") -> DAQJobStoreConfig:
    return DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path=path, add_date=True))


def round_trip(message):
    return Decoder().decode(Encoder().encode(message))


def sample_table() -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([1_700_000_000_000, 1_700_000_000_001], pa.int64()),
            "value": [1.5, -2.25],
            "name": ["alpha", None],
            "samples": [[1, 2, 3], []],
        }
    )


class TestRoundTrip:
    def test_an_arrow_table_arrives_intact_as_an_arrow_table(self) -> None:
        table = sample_table()
        sent = DAQJobMessageStorePyArrow(store_config=csv_config(), table=table, tag="run7")

        received = round_trip(sent)

        assert type(received) is DAQJobMessageStorePyArrow
        assert isinstance(received.get_table(), pa.Table)
        assert received.get_table().schema == table.schema
        assert received.get_table().equals(table)
        assert received.store_config == sent.store_config
        assert (received.id, received.timestamp, received.tag) == (sent.id, sent.timestamp, "run7")

    def test_the_table_travels_as_its_own_frame_not_inside_the_header(self) -> None:
        table = pa.table({"payload": [b"x" * 10_000]})
        frames = Encoder().encode(DAQJobMessageStorePyArrow(store_config=csv_config(), table=table))

        type_frame, header, *buffers = frames

        assert type_frame == b"DAQJobMessageStorePyArrow"
        assert len(buffers) == 1
        assert len(header) < 1000
        assert len(memoryview(buffers[0])) > 10_000

    def test_raw_bytes_arrive_byte_for_byte(self) -> None:
        data = bytes(range(256)) * 4
        received = round_trip(DAQJobMessageStoreRaw(store_config=csv_config(), data=data))

        assert type(received) is DAQJobMessageStoreRaw
        assert received.data == data

    def test_a_stop_message_keeps_its_reason_and_topics(self) -> None:
        sent = DAQJobMessageStop(reason="operator asked", topics={"daq_job.job1"})

        received = round_trip(sent)

        assert type(received) is DAQJobMessageStop
        assert received.reason == "operator asked"
        assert received.topics == {"daq_job.job1"}

    def test_one_decoder_decodes_many_messages_of_different_types(self) -> None:
        encoder, decoder = Encoder(), Decoder()
        table = sample_table()
        messages = [
            DAQJobMessageStop(reason="a"),
            DAQJobMessageStorePyArrow(store_config=csv_config(), table=table),
            DAQJobMessageStoreRaw(store_config=csv_config(), data=b"raw"),
            DAQJobMessageStop(reason="b"),
        ]

        received = [decoder.decode(encoder.encode(m)) for m in messages]

        assert [type(m) for m in received] == [type(m) for m in messages]
        assert received[1].get_table().equals(table)
        assert (received[0].reason, received[2].data, received[3].reason) == ("a", b"raw", "b")


class TestMalformedFrames:
    @pytest.mark.parametrize(
        "frames",
        [
            pytest.param([b"DAQJobMessageStop", b"\xc1 not msgpack"], id="garbage header"),
            pytest.param([b"os.system", msgspec.msgpack.encode({"reason": "x"})], id="unknown type name"),
            pytest.param([b"builtins.eval", msgspec.msgpack.encode({})], id="dotted builtin name"),
            pytest.param([b"DAQJobMessageStop", msgspec.msgpack.encode([1, 2, 3])], id="array not map"),
            pytest.param(
                [b"DAQJobMessageStop", msgspec.msgpack.encode({"reason": 5})], id="wrong field type"
            ),
            pytest.param([b"DAQJobMessageStop", msgspec.msgpack.encode({})], id="missing field"),
            pytest.param([b"\xff\xfe", msgspec.msgpack.encode({})], id="type name not ascii"),
            pytest.param([b"DAQJobMessageStop"], id="header missing"),
            pytest.param([], id="no frames"),
            pytest.param(
                [
                    b"DAQJobMessageStorePyArrow",
                    msgspec.msgpack.encode({"store_config": {}, "table": {"__oob__": 3}}),
                ],
                id="buffer index out of range",
            ),
            pytest.param(
                [
                    b"DAQJobMessageStorePyArrow",
                    msgspec.msgpack.encode({"store_config": {}, "table": {"__oob__": 0}}),
                    b"not an arrow stream",
                ],
                id="buffer not arrow",
            ),
        ],
    )
    def test_a_malformed_frame_raises_message_error(self, frames: list[bytes]) -> None:
        with pytest.raises(MessageError):
            Decoder().decode(frames)

    def test_an_unknown_type_name_is_named_in_the_error_and_never_imported(self) -> None:
        with pytest.raises(MessageError, match=r"os\.system"):
            Decoder().decode([b"os.system", msgspec.msgpack.encode({"reason": "x"})])

    def test_a_truncated_arrow_frame_raises_message_error(self) -> None:
        frames = Encoder().encode(
            DAQJobMessageStorePyArrow(store_config=csv_config(), table=pa.table({"a": [1, 2, 3]}))
        )
        body = bytes(memoryview(frames[2]))

        with pytest.raises(MessageError):
            Decoder().decode([frames[0], frames[1], body[:-24]])

    def test_an_arrow_frame_with_corrupt_metadata_raises_message_error(self) -> None:
        header = msgspec.msgpack.encode({"store_config": {}, "table": {"__oob__": 0}})
        corrupt = b"\xff\xff\xff\xff\x08\x00\x00\x00" + b"\x00" * 8

        with pytest.raises(MessageError):
            Decoder().decode([b"DAQJobMessageStorePyArrow", header, corrupt])

    def test_a_decoder_still_works_after_rejecting_a_frame(self) -> None:
        decoder = Decoder()
        with pytest.raises(MessageError):
            decoder.decode([b"DAQJobMessageStop", b"\xc1"])

        assert decoder.decode(Encoder().encode(DAQJobMessageStop(reason="ok"))).reason == "ok"


class _CreatesFile:
    """Unpickling this object creates the file at ``path`` (a stand-in for any code execution)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class TestNoPickle:
    def test_the_pickle_payload_used_below_really_creates_its_file_when_unpickled(self, tmp_path) -> None:
        armed = str(tmp_path / "armed")

        handle = pickle.loads(pickle.dumps(_CreatesFile(armed)))  # the control case
        handle.close()

        assert os.path.exists(armed)

    @pytest.mark.parametrize("type_name", [b"DAQJobMessageStop", b"DAQJobMessage", b"_CreatesFile"])
    def test_a_pickle_sent_as_header_is_rejected_and_never_unpickled(self, tmp_path, type_name) -> None:
        target = tmp_path / "pwned"
        payload = pickle.dumps(_CreatesFile(str(target)))

        with pytest.raises(MessageError):
            Decoder().decode([type_name, payload])

        assert not target.exists()

    def test_a_pickle_sent_as_a_buffer_frame_is_rejected_and_never_unpickled(self, tmp_path) -> None:
        target = tmp_path / "pwned"
        header = msgspec.msgpack.encode({"store_config": {}, "table": {"__oob__": 0}})

        with pytest.raises(MessageError):
            Decoder().decode([b"DAQJobMessageStorePyArrow", header, pickle.dumps(_CreatesFile(str(target)))])

        assert not target.exists()

    def test_encoding_a_value_msgpack_cannot_carry_is_an_error_not_a_pickle(self) -> None:
        message = DAQJobMessageStorePyArrow(store_config=csv_config(), table=None)
        message.tag = object()  # type: ignore[assignment]

        with pytest.raises(MessageError, match="object"):
            Encoder().encode(message)
