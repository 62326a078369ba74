"""A ring producer or consumer as its own process: ``python -m tests.system.ring_roles '<json>'``.

Started by tests/system/test_ring_processes.py with ``subprocess`` (fresh
interpreters, unrelated to each other: consumers find rings by name).

Every message carries its ring sequence number: its table holds ``seq``
(repeated), ``i`` and values derived from both, and its tag is
``"<seq>:<crc32 of the values' bytes>"``. The last message of a producer that
is not killed is a raw ``end`` marker. A consumer writes one line per message
to its log, ``"<ring> <seq> ok|end|BAD:<why>"``, with one ``os.write`` per
batch *before* it releases the batch, so after a kill -9 the log holds at
least everything the ring's cursor had passed.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
import zlib
from typing import Any

import numpy as np
import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobStoreConfig,
    DAQJobStoreConfigMemory,
)
from enrgdaq.data import layout as L
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter

CONFIG = DAQJobStoreConfig(memory=DAQJobStoreConfigMemory())


def values(seq: int, rows: int) -> np.ndarray:
    return (
        (np.arange(rows, dtype=np.uint64) * np.uint64(40503) + np.uint64(seq * 2654435761)) % (2**61)
    ).astype(np.int64)


def make_message(seq: int, rows: int) -> DAQJobMessage:
    v = values(seq, rows)
    table = pa.table(
        {
            "seq": pa.array(np.full(rows, seq, dtype=np.int64)),
            "i": pa.array(np.arange(rows, dtype=np.int32)),
            "v": pa.array(v),
        }
    )
    return DAQJobMessageStorePyArrow(store_config=CONFIG, table=table, tag=f"{seq}:{zlib.crc32(v.tobytes())}")


def end_message(seq: int) -> DAQJobMessage:
    return DAQJobMessageStoreRaw(store_config=CONFIG, data=b"end", tag=f"end:{seq}")


def check(message: DAQJobMessage) -> tuple[int, str]:
    """The sequence number a message claims and ``ok``, ``end`` or ``BAD:<why>``."""
    tag = message.tag or ""  # type: ignore[attr-defined]
    if tag.startswith("end:"):
        ok = isinstance(message, DAQJobMessageStoreRaw) and message.data == b"end"
        return int(tag[4:]), "end" if ok else "BAD:end-marker"
    seq_text, _, crc_text = tag.partition(":")
    seq = int(seq_text)
    if not isinstance(message, DAQJobMessageStorePyArrow) or message.table is None:
        return seq, "BAD:no-table"
    table = message.table
    v = table.column("v").chunk(0)
    # The checksum over the value buffer as it lies in the ring (zero-copy), then the values themselves.
    data = np.frombuffer(v.buffers()[1], dtype=np.int64, count=len(v) + v.offset)[v.offset :]
    if zlib.crc32(data.tobytes()) != int(crc_text):
        return seq, "BAD:checksum"
    if not np.array_equal(data, values(seq, table.num_rows)):
        return seq, "BAD:values"
    if not np.all(table.column("seq").to_numpy() == seq):
        return seq, "BAD:seq-column"
    if not np.array_equal(table.column("i").to_numpy(), np.arange(table.num_rows)):
        return seq, "BAD:index-column"
    return seq, "ok"


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def producer(cfg: dict[str, Any]) -> int:
    settings = DataPlaneSettings(
        run_dir=cfg["run_dir"],
        ring_bytes=cfg["slots"] * cfg["slot_bytes"],
        slot_bytes=cfg["slot_bytes"],
        policy="block",
        block_timeout_s=cfg.get("block_timeout_s", 60.0),
        consumer_timeout_s=cfg.get("consumer_timeout_s", 3600.0),
    )
    writer = RingWriter(cfg["producer_id"], settings)
    writer.ensure_consumers(cfg["consumers"])
    start = writer.ring.write_seq
    epoch = writer.ring.word(L.PRODUCER_EPOCH_W)
    write_json(cfg["ready"], {"pid": os.getpid(), "start": start, "epoch": epoch})
    count = cfg.get("count")
    stop_file = cfg.get("stop_file")
    rows = cfg["rows"]
    seq = start
    while (count is None or seq < start + count) and not (stop_file and os.path.exists(stop_file)):
        got = writer.write(make_message(seq, rows))
        if got != seq:
            print(f"write gave {got}, expected {seq}", file=sys.stderr)
            return 3
        seq += 1
    if writer.write(end_message(seq)) != seq:
        return 3
    write_json(cfg["summary"], {"start": start, "end": seq, "epoch": epoch, **writer.stats()})
    writer.close()
    return 0


def consumer(cfg: dict[str, Any]) -> int:
    reader = RingReader(cfg["name"], cfg["run_dir"])
    rings = cfg["rings"]
    hold = cfg.get("hold", 0)
    pause = cfg.get("sleep_s", 0.0)
    deadline = time.monotonic() + cfg.get("timeout_s", 150.0)
    log = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    held: collections.deque[DAQJobMessage] = collections.deque()
    ended: set[str] = set()
    while len(reader.trackers) < rings:
        if time.monotonic() > deadline:
            return 2
        reader.scan()
        time.sleep(0.005)
    write_json(cfg["ready"], {"pid": os.getpid(), "rings": sorted(reader.trackers)})
    while len(ended) < rings:
        if time.monotonic() > deadline:
            return 2
        got = 0
        for name in sorted(reader.trackers):
            messages = reader.drain(name)
            lines = []
            for message in messages:
                seq, status = check(message)
                lines.append(f"{name} {seq} {status}\n")
                if status == "end":
                    ended.add(name)
            if lines:
                os.write(log, "".join(lines).encode())  # logged before any of them is released
            held.extend(messages)
            got += len(messages)
            del messages
            while len(held) > hold:
                held.popleft().release()  # type: ignore[attr-defined]
        if pause:
            time.sleep(pause)  # a slow consumer: the producer has to wait for it
        elif not got:
            time.sleep(0.0002)
    while held:
        held.popleft().release()  # type: ignore[attr-defined]
    os.close(log)
    write_json(cfg["summary"], {"lost": reader.lost, "corrupted": reader.corrupted})
    reader.close()
    return 0


def main() -> int:
    cfg = json.loads(sys.argv[1])
    return producer(cfg) if cfg["role"] == "producer" else consumer(cfg)


if __name__ == "__main__":
    sys.exit(main())
