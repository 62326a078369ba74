"""The Redis store against a real redis-server: the original's key scheme, read back with redis-py
value by value; a server that is down or has a key of the wrong type stalls the store and every
row arrives once when it is back; a reply lost after EXEC and a store run again after a commit it
never released write nothing twice; time series on a server without the module are refused.

Real rings in a temp directory and a real store, driven step by step (its loop's own steps).
"""

from __future__ import annotations

import base64
import gc
import logging
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
import redis

from enrgdaq.daq.jobs.store.redis import DAQJobStoreRedis, DAQJobStoreRedisConfig
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigRedis,
)
from enrgdaq.daq.store.redis_layout import commands, samples
from enrgdaq.daq.store.retry import keep_in_ring
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter
from tests.harness.redis_proc import RedisProcess
from tests.harness.secret_redis import PasswordRedisProcess
from tests.harness.waiting import wait_for
from tests.unit.test_store_write_errors import step

STORE = "store_redis"


def to(key: str, **kw: Any) -> DAQJobStoreConfig:
    return DAQJobStoreConfig(redis=DAQJobStoreConfigRedis(key=key, **kw))


def numbered(n: int, key: str = "k") -> DAQJobMessageStorePyArrow:
    return DAQJobMessageStorePyArrow(store_config=to(key), table=pa.table({"n": [n]}))


@pytest.fixture
def ring(tmp_path: Any) -> Iterator[tuple[DataPlaneSettings, RingWriter]]:
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=16 * 4096, slot_bytes=4096, block_timeout_s=0.05)
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE])
    try:
        yield settings, writer
    finally:
        writer.close()


def redis_store(server: RedisProcess, settings: DataPlaneSettings) -> DAQJobStoreRedis:
    store = DAQJobStoreRedis(
        DAQJobStoreRedisConfig(
            daq_job_type="DAQJobStoreRedis", daq_job_unique_id=STORE, host="127.0.0.1", port=server.port
        )
    )
    store.configure_data_plane(settings)
    return store


def released(writer: RingWriter) -> int:
    gc.collect()
    return writer.ring.cursor(writer.ring.find_consumer(STORE))


def numbers(client: redis.Redis, key: str = "k.n") -> list[int]:
    return [int(v) for v in client.lrange(key, 0, -1)]


def test_tables_rows_and_raw_bytes_are_in_the_original_keys_value_by_value(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    table = pa.table(
        {"n": [1, 2, 3], "x": [0.1, -1.25, 1e300], "s": ["a", "é", None], "ok": [True, False, True]}
    )
    try:
        writer.write(DAQJobMessageStorePyArrow(store_config=to("k"), table=table))
        writer.write(DAQJobMessageStorePyArrow(store_config=to("k"), table=table, tag="t"))
        writer.write(
            DAQJobMessageStoreTabular(store_config=to("k"), keys=["n", "x"], data=[[4, 4.5], [5, 5.5]])
        )
        writer.write(DAQJobMessageStoreTabular(store_config=to("k"), keys=["n"], data_columns={"n": [6]}))
        writer.write(DAQJobMessageStoreRaw(store_config=to("cam"), data=b"\x00\xffframe", tag="front"))
        writer.write(DAQJobMessageStoreRaw(store_config=to("cam", key_expiration_days=3), data=b"last"))
        daily = to("daily", key_expiration_days=2)
        writer.write(DAQJobMessageStorePyArrow(store_config=daily, table=pa.table({"v": [1.5, 2.5]})))
        step(store)

        r = redis_proc.client()
        assert numbers(r) == [1, 2, 3, 4, 5, 6]
        assert [float(v) for v in r.lrange("k.x", 0, -1)] == [0.1, -1.25, 1e300, 4.5, 5.5]
        assert r.lrange("k.s", 0, -1) == ["a", "é", ""]
        assert r.lrange("k.ok", 0, -1) == ["1", "0", "1"]
        assert numbers(r, "k.t.n") == [1, 2, 3] and r.lrange("k.t.s", 0, -1) == ["a", "é", ""]
        assert base64.b64decode(r.get("cam.front")) == b"\x00\xffframe"  # the tag is in the key
        assert r.ttl("cam.front") == -1
        assert base64.b64decode(r.get("cam")) == b"last" and 0 < r.ttl("cam") <= 3 * 86400
        day_key = f"daily.v:{date.today().isoformat()}"
        assert [float(v) for v in r.lrange(day_key, 0, -1)] == [1.5, 2.5]
        assert 2 * 86400 - 60 < r.ttl(day_key) <= 2 * 86400
        assert released(writer) == writer.ring.write_seq
        assert store.counters.unsupported == 0 and store.counters.failed == 0
    finally:
        store.free()


def test_a_redis_that_is_down_stalls_the_store_and_every_row_arrives_once_when_it_is_back(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    try:
        writer.write(numbered(0))
        step(store)
        assert numbers(redis_proc.client()) == [0] and released(writer) == 1

        redis_proc.stop()
        for n in (1, 2, 3):
            writer.write(numbered(n))
        step(store)
        assert store._writes.failing, "a write to a stopped server went through?"
        snapshot = store.counters.snapshot()
        assert snapshot["write_failing"] == 1
        assert f"redis 127.0.0.1:{redis_proc.port} db 0" in snapshot["last_error"], snapshot["last_error"]
        wait_for(lambda: (step(store), store.counters.write_errors >= 3)[1], 5, "two failed retries")
        assert released(writer) == 1, "slots given back although their rows were not written"

        redis_proc.start()
        wait_for(lambda: (step(store), not store._writes.failing)[1], 10, "the retry once Redis is back")
        assert numbers(redis_proc.client()) == [0, 1, 2, 3]
        assert released(writer) == 4 and store.counters.write_failing == 0
    finally:
        store.free()


def test_a_key_of_another_type_stalls_the_store_until_it_is_gone(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    r = redis_proc.client()
    r.set("k.n", "someone else's string")
    try:
        writer.write(numbered(0))
        step(store)
        assert store._writes.failing
        assert "key 'k.n' holds a string, not a list" in store.counters.last_error
        r.delete("k.n")
        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry after the key is gone")
        assert numbers(r) == [0] and released(writer) == 1
    finally:
        store.free()


def test_a_reply_lost_after_exec_does_not_write_the_rows_twice(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    execute = redis.client.Pipeline.execute
    lost: list[bool] = []

    def exec_then_lose_the_reply(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        result = execute(self, raise_on_error)
        if self.transaction and not lost:
            lost.append(True)
            raise redis.ConnectionError("connection lost after EXEC (test)")
        return result

    monkeypatch.setattr(redis.client.Pipeline, "execute", exec_then_lose_the_reply)
    try:
        for n in range(3):
            writer.write(numbered(n))
        step(store)
        assert store._writes.failing and lost
        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry")
        assert numbers(redis_proc.client()) == [0, 1, 2]
        assert released(writer) == 3
    finally:
        store.free()


def test_a_store_run_again_after_a_commit_it_never_released_skips_what_redis_holds(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    first = redis_store(redis_proc, settings)
    for n in range(3):
        writer.write(numbered(n))
    first._poll_rings()
    first.store_loop()  # committed: rows and positions in one transaction ...
    keep_in_ring(first._unreleased)  # ... then "killed" before the release
    first._unreleased.clear()
    first.free()
    assert released(writer) == 0

    second = redis_store(redis_proc, settings)
    try:
        writer.write(numbered(3))
        step(second)
        assert numbers(redis_proc.client()) == [0, 1, 2, 3]
        assert released(writer) == 4
    finally:
        second.free()


def test_time_series_on_a_server_without_the_module_are_refused_clearly_and_nothing_else_is_lost(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter], caplog: pytest.LogCaptureFixture
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    table = pa.table({"timestamp": [1_700_000_000_000, 1_700_000_000_001], "v": [1.0, 2.0]})
    caplog.set_level(logging.ERROR)
    try:
        for _ in range(2):
            writer.write(DAQJobMessageStorePyArrow(store_config=to("ts", use_timeseries=True), table=table))
        writer.write(numbered(7))
        step(store)

        assert store.counters.unsupported == 2 and not store._writes.failing
        refusals = [r.getMessage() for r in caplog.records if "cannot store" in r.getMessage()]
        assert len(refusals) == 1, refusals  # once per producer
        assert "has no RedisTimeSeries module" in refusals[0] and "use_timeseries = false" in refusals[0]
        assert refusals[0].startswith(f"[{STORE}]")
        r = redis_proc.client()
        assert numbers(r) == [7] and r.keys("ts*") == []
        assert released(writer) == 3
    finally:
        store.free()


def test_time_series_commands_follow_the_original_layout_without_its_bugs() -> None:
    table = pa.table({"timestamp": [1000, 2000, 3000], "a": [1.5, None, 3.5], "b": [1, 2, 3]})
    item = samples(table, "hv", "VMon", expiration_days=2)
    assert not isinstance(item, str)
    new = {"hv.VMon.a", "hv.VMon.b"}
    retention = 2 * 86400 * 1000
    create = ("RETENTION", retention, "DUPLICATE_POLICY", "LAST", "LABELS", "key", "hv", "tag", "VMon")
    assert commands(item, new) == [
        ("TS.CREATE", "hv.VMon.a", *create),
        ("TS.MADD", "hv.VMon.a", 1000, 1.5, "hv.VMon.a", 3000, 3.5),  # a null is no sample
        ("TS.CREATE", "hv.VMon.b", *create),
        ("TS.MADD", "hv.VMon.b", 1000, 1.0, "hv.VMon.b", 2000, 2.0, "hv.VMon.b", 3000, 3.0),
    ]  # no series for the timestamp column itself (the original wrote one it never created)
    assert commands(item, set())[0][0] == "TS.MADD"  # existing series are not created again

    stamped = pa.table({"timestamp": pa.array([1_500], pa.timestamp("ms")), "v": [2.0]})
    assert commands(samples(stamped, "k", None, None), set()) == [("TS.MADD", "k.v", 1500, 2.0)]  # type: ignore[arg-type]
    assert "needs a 'timestamp' column" in str(samples(pa.table({"v": [1.0]}), "k", None, None))
    assert "a time series holds numbers" in str(
        samples(pa.table({"timestamp": [1], "s": ["x"]}), "k", None, None)
    )


@pytest.mark.parametrize("password", [None, "wrong"])
def test_a_missing_or_wrong_password_stalls_the_store_and_never_shows_a_password(
    tmp_path: Any,
    ring: tuple[DataPlaneSettings, RingWriter],
    caplog: pytest.LogCaptureFixture,
    password: str | None,
) -> None:
    settings, writer = ring
    server = PasswordRedisProcess(str(tmp_path / "data-redis"))
    server.start()
    store = redis_store(server, settings)
    store.config.password = None if password is None else password + server.password
    caplog.set_level(logging.DEBUG)
    try:
        writer.write(numbered(0))
        step(store)
        assert store._writes.failing
        error = store.counters.snapshot()["last_error"]
        assert "AuthenticationError" in error, error
        for secret in (server.password, store.config.password):
            if secret:
                assert secret not in error and secret not in caplog.text
        store.config.password = server.password
        wait_for(lambda: (step(store), not store._writes.failing)[1], 5, "the retry with the right password")
        assert numbers(server.client()) == [0]
    finally:
        store.free()
        server.stop()


def test_a_redis_restarted_between_writes_is_reconnected_to_and_loses_nothing(
    redis_proc: RedisProcess, ring: tuple[DataPlaneSettings, RingWriter]
) -> None:
    settings, writer = ring
    store = redis_store(redis_proc, settings)
    try:
        for n in range(20):
            writer.write(numbered(n))
            step(store)
            if n == 9:
                redis_proc.restart()  # the store's connection is dead now
        wait_for(lambda: (step(store), not store._writes.failing)[1], 10, "the writes")
        assert numbers(redis_proc.client()) == list(range(20))
        assert store.counters.write_errors == 0, "a restart between writes is no failed write"
        assert released(writer) == 20
    finally:
        store.free()
