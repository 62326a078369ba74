"""The benchmark's producer and consumer: ordinary jobs on the ordinary path.

The producer sends the original's payload, a two-column float64 table of N
rows, through a :class:`~enrgdaq.daq.channel.StoreChannel` (``channel.put``,
the readout-loop path) or, with ``channel = false``, one ``_put_message_out``
call a message (the original's API). It stamps a sequence number, its id and
the send time into column ``a`` (zero elsewhere) and the sequence number again
into ``b[0]`` (``b`` is ``arange(N)`` elsewhere), in place, as a readout loop
refills its buffers. The consumer (a store) reads every value: both column
sums must match the stamps of the message's own sequence number, so a payload
mixed from two messages, or overwritten while it was read, counts as
corrupted. It records two latencies: from the producer's ``_put_message_out``
call (what a user sees: it includes the producer's copy into the ring) and
from the commit of the slot (the hand-over alone).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobConfig, DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.daq.topics import Topic
from enrgdaq.data.runs import SlotRun

SINK = "DAQJobBenchSink"


class BenchSourceConfig(DAQJobConfig, kw_only=True):
    values: int = 10_000
    count: int = 1000
    rate: float = 0.0  # messages per second; 0: as fast as the consumers take them
    producer: int = 0
    store_kind: str = ""  # e.g. "csv": send to that kind of store (store_config) instead of the sink
    store_config: dict[str, Any] = {}
    channel: bool = True  # send through a StoreChannel (False: one _put_message_out call a message)


class DAQJobBenchSource(DAQJob):
    config_type = BenchSourceConfig

    def start(self) -> None:
        cfg = self.config
        n = max(cfg.values, 3)  # N rows of two float64 values: 16 bytes a row
        a = np.zeros(n, dtype=np.float64)
        b = np.arange(n, dtype=np.float64)
        topics = {Topic.store(SINK)} if not cfg.store_kind else set()
        kinds = {cfg.store_kind: cfg.store_config} if cfg.store_kind else {}
        target = msgspec.convert(kinds, DAQJobStoreConfig)
        period = 1.0 / cfg.rate if cfg.rate > 0 else 0.0
        due = time.monotonic()
        table = pa.table({"a": a, "b": b})  # over a and b: refilled in place, as a readout loop does
        channel = self.store_channel(target, topics=topics) if cfg.channel else None
        for seq in range(cfg.count):
            if self._has_been_freed:
                return
            if period:
                due += period
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -period:
                    due -= pause  # behind (the first message waits for the store): no catch-up burst
            b[0] = seq
            a[0], a[1], a[2] = seq, cfg.producer, time.monotonic_ns()
            if channel is not None:
                channel.put(table)
            else:
                self._put_message_out(
                    DAQJobMessageStorePyArrow(store_config=target, table=table, topics=set(topics))
                )
        while not self._has_been_freed and not cfg.store_kind:
            time.sleep(0.01)


class BenchResult(msgspec.Struct):
    received: int = 0
    bytes: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latencies_ns: list[int] = []  # from the producer's _put_message_out call (includes its copy)
    handle_latencies_ns: list[int] = []  # from the commit into the ring (what the handle waits)


class DAQJobBenchSink(DAQJobStore):
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStorePyArrow]
    config_type = DAQJobConfig

    def __init__(self, config: Any, expected: dict[int, int], **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.expected = expected  # producer id -> message count
        self.seen: dict[int, int] = {p: -1 for p in expected}
        self._finished = 0  # producers whose last message arrived
        self.result = BenchResult()

    def handle_batch(self, messages: list[DAQJobMessage]) -> None:
        """Everything ready in the ring at once (the store API's batch path)."""
        check = self._check
        for message in messages:
            check(message)  # type: ignore[arg-type]

    def handle_runs(self, runs: list[SlotRun]) -> None:
        """Payloads that followed each other in the ring, read in place: every value of both
        columns is summed per payload (one numpy call per column for the whole run), and each
        payload's sums must match its own stamps, as in :meth:`_check`."""
        for run in runs:
            a, b = run.column(0), run.column(1)  # count x n, zero-copy over the slots
            n = b.shape[1]
            sums_a, sums_b = _sum(a, axis=1), _sum(b, axis=1)  # every value of every payload
            seqs, producers, sents = a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()
            del a, b
            now = time.monotonic_ns()  # every payload of the run checked
            intact = (sums_a == seqs + producers + sents) & (sums_b == n * (n - 1) / 2 + seqs)
            self._account(
                now, n, intact.tolist(), seqs.tolist(), producers.tolist(), sents.tolist(), run.committed_ns
            )
            run.release()
        if self._finished == len(self.expected):
            self.request_stop()

    def _account(
        self,
        now: int,
        n: int,
        intact: list[bool],
        seqs: list[float],
        producers: list[float],
        sents: list[float],
        committed: list[int],
    ) -> None:
        """Counts and latencies of a run's payloads, in ring order (as :meth:`_check` does one)."""
        result, seen, expected = self.result, self.seen, self.expected
        for ok, seq_f, producer_f in zip(intact, seqs, producers, strict=True):
            seq, producer = int(seq_f), int(producer_f)
            if not ok or producer not in seen:
                result.corrupted += 1
            elif seq <= seen[producer]:
                result.duplicated += 1
            else:
                result.lost += seq - seen[producer] - 1
                seen[producer] = seq
                if seq == expected[producer] - 1:
                    self._finished += 1
        if not result.received:
            result.first_ns = now
        result.received += len(intact)
        result.bytes += len(intact) * n * 16
        result.last_ns = now
        result.latencies_ns += [now - int(sent) for sent in sents]
        result.handle_latencies_ns += [now - c for c in committed]

    def handle_message(self, message: DAQJobMessage) -> bool:
        assert isinstance(message, DAQJobMessageStorePyArrow)
        self._check(message)
        return True

    def _check(self, message: DAQJobMessageStorePyArrow) -> None:
        """Read every value of one payload, check its stamps, record its latencies, release it."""
        now = time.monotonic_ns()
        table = message.get_table()
        a = table.column(0).to_numpy()  # zero-copy views (one chunk, no nulls)
        b = table.column(1).to_numpy()
        seq, producer, sent = int(a[0]), int(a[1]), int(a[2])
        n = len(b)
        # Every value is read: column a is zero past its three stamps, column b is arange(n) but b[0] = seq.
        intact = _sum(a) == float(seq + producer + sent) and _sum(b) == n * (n - 1) / 2 + seq
        result = self.result
        if not intact or producer not in self.seen:
            result.corrupted += 1
        elif seq <= self.seen[producer]:
            result.duplicated += 1
        else:
            result.lost += seq - self.seen[producer] - 1
            self.seen[producer] = seq
            if seq == self.expected[producer] - 1:
                self._finished += 1
        if not result.received:
            result.first_ns = now
        result.received += 1
        result.bytes += n * 16  # two float64 columns
        result.last_ns = now
        result.latencies_ns.append(now - sent)
        guard = getattr(message, "_ring_guard", None)
        if guard is not None:
            result.handle_latencies_ns.append(now - guard.committed_ns)
        del guard
        del a, b, table
        message.release()
        if self._finished == len(self.expected):
            self.request_stop()


_sum = np.add.reduce
