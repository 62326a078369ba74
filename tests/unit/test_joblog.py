"""Log streams in a real Redis: what a job logs can be read back, secrets never get there, and a
slow or absent Redis never holds up the job that logs."""

from __future__ import annotations

import logging
import time

from enrgdaq.control.joblog import STREAM_MAXLEN, LogStore, RedisLogHandler
from enrgdaq.control.keys import NODE_LOG
from tests.harness.redis_proc import RedisProcess
from tests.harness.waiting import wait_for


def job_logger(handler: RedisLogHandler, name: str = "enrgdaq.test.joblog") -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers[:] = [handler]
    return log


def test_lines_come_back_in_order_per_source_with_their_fields(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    store = LogStore(client, "lab")
    job = RedisLogHandler(client, "lab", "producer")
    node = RedisLogHandler(client, "lab", NODE_LOG)
    try:
        log = job_logger(job)
        for n in range(150):
            log.info("[producer] line %d", n)
        log.warning("[producer] last")
        job_logger(node, "enrgdaq.test.node").error("supervisor says hi")
        wait_for(lambda: len(store.tail("producer", 1000)) == 151, 5, "151 lines in the stream")
        wait_for(lambda: store.tail(NODE_LOG), 5, "the node's line")
    finally:
        job.close()
        node.close()

    last = store.tail("producer", 100)
    assert [line.message for line in last[:2]] == ["[producer] line 51", "[producer] line 52"]
    assert last[-1].message == "[producer] last" and last[-1].level == "WARNING"
    assert last[-1].logger == "enrgdaq.test.joblog" and last[-1].source == "producer"
    assert abs(last[-1].time - time.time()) < 30
    assert store.tail(NODE_LOG)[0].message == "supervisor says hi"
    assert store.sources() == [NODE_LOG, "producer"]
    assert store.tail("nobody") == []


def test_follow_returns_what_came_after_an_id_and_nothing_on_a_timeout(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    store = LogStore(client, "lab")
    handler = RedisLogHandler(client, "lab", "job")
    try:
        log = job_logger(handler)
        log.info("first")
        seen = wait_for(lambda: store.tail("job"), 5, "the first line")
        started = time.monotonic()
        assert store.follow("job", after=seen[-1].id, block_ms=200) == []
        assert time.monotonic() - started >= 0.15
        log.info("second")
        log.info("third")
        got: list[str] = []
        cursor = seen[-1].id
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            for line in store.follow("job", cursor, 500):
                got.append(line.message)
                cursor = line.id
        assert got == ["second", "third"]
    finally:
        handler.close()


def test_secrets_never_reach_the_stream(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    store = LogStore(client, "lab")
    handler = RedisLogHandler(client, "lab", "alerts")
    secrets = ("s3cr3t-pw", "T000/B000/XXXXsecretXXXX", "abcdef123456tok", "hunter2")
    try:
        log = job_logger(handler)
        log.info("connecting to mysql://daq:s3cr3t-pw@db:3306/runs")
        log.info("posting to https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX failed")
        log.info("config: token = 'abcdef123456tok', password=hunter2; rate=5")
        try:
            raise ConnectionError("redis://:hunter2@127.0.0.1:6379/0 refused")
        except ConnectionError:
            log.exception("lost Redis")
        lines = wait_for(lambda: len(store.tail("alerts")) == 4 and store.tail("alerts"), 5, "4 lines")
    finally:
        handler.close()
    text = "\n".join(line.message for line in lines)
    for secret in secrets:
        assert secret not in text, text
    assert "mysql://daq:***@db:3306/runs" in text
    assert "https://hooks.slack.com/***" in text
    assert "rate=5" in text and "Traceback" in text


def test_a_redis_that_is_down_never_holds_up_the_job_and_the_loss_is_said(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    store = LogStore(client, "lab")
    handler = RedisLogHandler(client, "lab", "job", queue_size=1000)
    try:
        log = job_logger(handler)
        redis_proc.stop()
        started = time.monotonic()
        for n in range(20_000):
            log.info("line %d while Redis is down", n)
        took = time.monotonic() - started
        assert took < 5.0, f"20,000 records took {took:.1f} s with Redis down"
        assert handler.dropped >= 19_000 - 1000

        redis_proc.start()
        handler.flush(15)  # what waited in memory goes out (or is dropped) first
        log.info("Redis is back")
        lines = wait_for(
            lambda: [line.message for line in store.tail("job", 2000) if "back" in line.message],
            15,
            "the line after Redis came back",
        )
        assert lines == ["Redis is back"]
        said = [line.message for line in store.tail("job", 2000) if "dropped" in line.message]
        assert said and said[0].endswith("log line(s) dropped: Redis was slow or unreachable"), said
    finally:
        handler.close()


def test_a_stream_is_capped(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    handler = RedisLogHandler(client, "lab", "chatty", queue_size=30_000)
    try:
        log = job_logger(handler)
        for n in range(3 * STREAM_MAXLEN):
            log.info("line %d", n)
        handler.flush(10)
    finally:
        handler.close()
    length = client.xlen("enrgdaq:lab:logs:chatty")
    assert STREAM_MAXLEN <= length < STREAM_MAXLEN * 1.2, length
