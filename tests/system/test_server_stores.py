"""The Redis and MySQL stores in a whole system (supervisor, beat, workers), fed by one producer:
the original's example configs run given the servers' address; stores killed -9 right after a
commit (before their ring slots are given back), a MariaDB server and a Redis that go down and come
back: every row is in Redis and in MariaDB exactly once, and the passwords never show in the
worker logs or in ``enrgdaq status``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.harness.mariadb_proc import DATABASE, USER, MariaDBServer, running_server
from tests.harness.redis_proc import RedisProcess
from tests.harness.secret_redis import PasswordRedisProcess
from tests.harness.system import DAQSystem
from tests.harness.waiting import wait_for
from tests.system.test_policies import enrgdaq

pytestmark = pytest.mark.system

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


@pytest.fixture
def mariadb(tmp_path: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    with running_server(tmp_path_factory, str(tmp_path / "mariadb")) as server:
        yield server


@pytest.fixture
def secret_redis(tmp_path: Any) -> Iterator[PasswordRedisProcess]:
    server = PasswordRedisProcess(str(tmp_path / "data-redis"))
    server.start()
    yield server
    server.stop()


def producer(system: DAQSystem, rate_hz: int) -> None:
    system.write(
        "seq.toml",
        f"""
        daq_job_type = "DAQJobSequence"
        rate_hz = {rate_hz}
        [store_config.redis]
        key = "seq"
        [store_config.mysql]
        table_name = "seq"
        """,
    )


def upstream(name: str, port: int) -> str:
    """The original's example file, with only its port changed to the test server's."""
    with open(os.path.join(UPSTREAM, name)) as f:
        text = f.read()
    changed, count = re.subn(r"(?m)^port = \d+$", f"port = {port}", text)
    assert count == 1, text
    return changed


def in_redis(server: RedisProcess) -> list[int]:
    return [int(v) for v in server.client().lrange("seq.seq", 0, -1)]


def in_mariadb(server: MariaDBServer) -> list[int]:
    try:
        return [int(row[0]) for row in server.rows("SELECT seq FROM seq")]
    except pymysql.err.ProgrammingError:  # no table yet
        return []


def status_of(system: DAQSystem) -> dict[str, dict[str, Any]]:
    result = enrgdaq(system, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {job["unique_id"]: job for job in json.loads(result.stdout)["jobs"]}


def stop_producer_and_read(system: DAQSystem, redis_server: RedisProcess, db: MariaDBServer) -> int:
    """Stop the producer; once both stores hold every row it sent, return how many it sent."""
    assert enrgdaq(system, "stop", "seq").returncode == 0
    system.wait_state("seq", "stopped", timeout=15)
    sent = int(system.job("seq").stats_dict["sent"])
    for where, rows in (("Redis", lambda: in_redis(redis_server)), ("MariaDB", lambda: in_mariadb(db))):
        wait_for(lambda rows=rows: len(set(rows())) >= sent, 30, f"the {sent} rows sent to be in {where}")
    return sent


def assert_exactly_once(sent: int, seqs: list[int], where: str) -> None:
    twice = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
    assert not twice, f"{where}: {len(twice)} row(s) written twice, from {twice[:5]}"
    assert sorted(seqs) == list(range(sent)), f"{where}: a row missing"


def test_the_original_example_configs_run_against_the_test_servers(
    system: DAQSystem, redis_proc: RedisProcess, mariadb: MariaDBServer
) -> None:
    producer(system, rate_hz=100)
    system.write("store_redis.toml", upstream("store_redis.toml", redis_proc.port))
    system.write("store_mysql.toml", upstream("store_mysql.toml", mariadb.port))
    system.start_all()
    wait_for(lambda: len(in_redis(redis_proc)) >= 50 and len(in_mariadb(mariadb)) >= 50, 40, "rows in both")

    sent = stop_producer_and_read(system, redis_proc, mariadb)
    assert in_redis(redis_proc) == list(range(sent)), "Redis: a row missing, twice or out of order"
    values = [float(v) for v in redis_proc.client().lrange("seq.value", 0, -1)]
    assert values == [float(n) for n in range(sent)]
    assert_exactly_once(sent, in_mariadb(mariadb), "MariaDB")
    assert mariadb.rows("SELECT COUNT(*) FROM seq WHERE value = seq") == [(sent,)]


def test_killed_after_a_commit_and_servers_down_every_row_once_and_no_password_shows(
    system: DAQSystem, tmp_path: Any, secret_redis: PasswordRedisProcess, mariadb: MariaDBServer
) -> None:
    markers = {name: tmp_path / f"killed-{name}" for name in ("store_redis", "store_mysql")}
    producer(system, rate_hz=200)
    system.write(
        "store_redis.toml",
        f"""
        daq_job_type = "DAQJobStoreRedisKilledAfterWrite"
        host = "127.0.0.1"
        port = {secret_redis.port}
        password = "{secret_redis.password}"
        kill_after_rows = 150
        marker = "{markers["store_redis"]}"
        """,
    )
    system.write(
        "store_mysql.toml",
        f"""
        daq_job_type = "DAQJobStoreMySQLKilledAfterWrite"
        host = "127.0.0.1"
        port = {mariadb.port}
        user = "{USER}"
        password = "{mariadb.password}"
        database = "{DATABASE}"
        kill_after_rows = 150
        marker = "{markers["store_mysql"]}"
        """,
    )
    system.start_all()
    for name, marker in markers.items():
        wait_for(marker.exists, 30, f"{name} to kill itself after a commit (logs in {system.log_dir})")
    for name in markers:
        wait_for(
            lambda name=name: system.job(name).restarts >= 1 and system.job(name).state.value == "running",
            30,
            f"{name} to run again",
        )

    for name, server in (("store_mysql", mariadb), ("store_redis", secret_redis)):
        server.stop()
        jobs = wait_for(
            lambda name=name: (found := status_of(system))[name]["state"] == "stalled" and found,
            30,
            f"status to show {name} stalled while its server is down",
            interval=0.2,
        )
        other = "store_redis" if name == "store_mysql" else "store_mysql"
        assert jobs[other]["state"] == "running", "the other store is held back too"
        assert jobs[name]["data"]["write_failing"] == 1 and jobs[name]["restarts"] == 1, jobs[name]
        server.start()
        wait_for(
            lambda name=name: status_of(system)[name]["state"] == "running",
            30,
            f"{name} to write again once its server is back",
            interval=0.2,
        )

    sent = stop_producer_and_read(system, secret_redis, mariadb)
    assert in_redis(secret_redis) == list(range(sent)), "Redis: a row missing, twice or out of order"
    assert_exactly_once(sent, in_mariadb(mariadb), "MariaDB")

    shown = [enrgdaq(system, "status", "--json").stdout, enrgdaq(system, "status").stdout]
    for name in sorted(os.listdir(system.log_dir)):
        with open(os.path.join(system.log_dir, name), errors="replace") as f:
            shown.append(f.read())
    for secret in (secret_redis.password, mariadb.password):
        leaks = [
            text[max(0, text.find(secret) - 80) : text.find(secret) + 40] for text in shown if secret in text
        ]
        assert not leaks, f"a password shows: {leaks}"
    assert "stalled" not in shown[1]


def test_servers_down_or_a_wrong_password_show_from_the_start_before_any_data(
    system: DAQSystem, secret_redis: PasswordRedisProcess, mariadb: MariaDBServer
) -> None:
    """A physicist starts the stores before the servers (or with a typo in a password): status
    says so at once, not at the first row hours later; the stores write once the servers are up."""
    mariadb.stop()
    secret_redis.stop()
    stores = {
        "store_redis": ("DAQJobStoreRedis", secret_redis.port, secret_redis.password, ""),
        "store_mysql": ("DAQJobStoreMySQL", mariadb.port, mariadb.password, f'database = "{DATABASE}"'),
        "store_mysql_typo": ("DAQJobStoreMySQL", mariadb.port, "not-it", f'database = "{DATABASE}"'),
    }
    for name, (kind, port, password, more) in stores.items():
        user = f'user = "{USER}"' if kind == "DAQJobStoreMySQL" else ""
        system.write(
            f"{name}.toml",
            f"""
            daq_job_type = "{kind}"
            host = "127.0.0.1"
            port = {port}
            password = "{password}"
            {user}
            {more}
            """,
        )
    system.start_all()
    system.start_worker("store", name="w-store-more").wait_ready()  # a process for each of the 3 stores

    def stalled(names: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
        jobs = status_of(system)
        return jobs if all(jobs[n]["state"] == "stalled" for n in names) else None

    jobs = wait_for(lambda: stalled(tuple(stores)), 30, "the three stores shown stalled", interval=0.2)
    for name in stores:
        assert jobs[name]["messages_in"] == 0, jobs[name]
    assert "127.0.0.1" in jobs["store_redis"]["error"] and "ConnectionError" in jobs["store_redis"]["error"]
    assert "Can't connect" in jobs["store_mysql"]["error"], jobs["store_mysql"]["error"]

    secret_redis.start()
    mariadb.start()
    jobs = wait_for(
        lambda: (
            (found := status_of(system))["store_mysql"]["state"] == "running"
            and found["store_redis"]["state"] == "running"
            and "Access denied" in (found["store_mysql_typo"]["error"] or "")
            and found
        ),
        40,
        "the stores running once their servers are up, the typo named",
        interval=0.2,
    )
    assert jobs["store_mysql_typo"]["state"] == "stalled"
    assert not any(s[2] in json.dumps(jobs) for s in stores.values()), "a password shows in status"

    assert enrgdaq(system, "stop", "store_mysql_typo").returncode == 0  # it would hold the ring
    system.wait_state("store_mysql_typo", "stopped", timeout=15)
    producer(system, rate_hz=100)  # a new file in the config directory: started by the supervisor
    wait_for(lambda: len(in_redis(secret_redis)) >= 30 and len(in_mariadb(mariadb)) >= 30, 40, "rows in both")
    sent = stop_producer_and_read(system, secret_redis, mariadb)
    assert in_redis(secret_redis) == list(range(sent))
    assert_exactly_once(sent, in_mariadb(mariadb), "MariaDB")
