"""DAQJobN1081B: strict config (sections checked, the original's early store form read), the
simulated unit's counters, the job's tables and stop, and the websocket client against a real
local websocket server that speaks the N1081B's JSON protocol."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.n1081b import DAQJobN1081B
from enrgdaq.daq.jobs.caen.n1081b_config import DAQJobN1081BConfig
from enrgdaq.daq.jobs.caen.n1081b_device import SimulatedN1081B
from enrgdaq.daq.store.models import DAQJobStoreConfigCSV
from enrgdaq.errors import ConfigError, DeviceError
from tests.harness.waiting import wait_for

BASE = """daq_job_type = "DAQJobN1081B"
host = "127.0.0.1"
port = "8080"
password = "pw-0f-unit"
sections_to_store = ["SEC_B", "SEC_D"]
"""
STORE = '[store_config.csv]\nfile_path = "n1081b.csv"\n'


def config(top: str = "", tables: str = STORE) -> DAQJobN1081BConfig:
    return decode(BASE + top + tables, DAQJobN1081BConfig, "n1081b.toml")


# -- config -----------------------------------------------------------------------------
def test_a_bad_section_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'SEC_E'") as err:
        decode(BASE.replace('"SEC_D"', '"SEC_E"') + STORE, DAQJobN1081BConfig, "n1081b.toml")
    assert err.value.field == "sections_to_store" and err.value.line == 5


def test_the_originals_early_store_form_is_read_and_unknown_keys_are_still_errors() -> None:
    c = config(
        tables='[store_config]\ndaq_job_store_type = "csv"\nfile_path = "n1081b.csv"\nadd_date = true\n'
    )
    assert c.store_config.csv == DAQJobStoreConfigCSV(file_path="n1081b.csv", add_date=True)
    with pytest.raises(ConfigError, match="file_pth"):
        config(tables='[store_config]\ndaq_job_store_type = "csv"\nfile_pth = "n.csv"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        config(top="pasword = 1\n")
    assert config(top="").port_number == 8080


# -- the simulated unit and the job -----------------------------------------------------------
class Clock:
    now = 10.0

    def __call__(self) -> float:
        return self.now


def test_the_simulated_unit_counts_at_its_rates() -> None:
    clock = Clock()
    unit = SimulatedN1081B({"SEC_B": [1000.0, 0.0]}, clock=clock, seed=1)
    unit.connect()
    clock.now += 10
    counters = unit.results("SEC_B")["data"]["counters"]
    assert counters[1] == {"lemo": 1, "value": 0}
    assert 9_500 < counters[0]["value"] < 10_500
    clock.now += 10
    assert unit.results("SEC_B")["data"]["counters"][0]["value"] > counters[0]["value"]
    assert unit.results("SEC_A") == {"Result": True, "data": {}}


def test_job_emits_one_table_per_section_with_lemo_columns_and_stops_within_a_second() -> None:
    c = config(
        top="simulate = true\npoll_interval_seconds = 0.05\n"
        "[simulation]\nsection_rates_hz = { SEC_D = [1e4, 0, 0] }\n"
    )
    job = DAQJobN1081B(c)
    thread = threading.Thread(target=job.start)
    thread.start()
    wait_for(lambda: len(job.message_out) >= 6, 5, "six tables out")
    t0 = time.monotonic()
    job.request_stop()
    thread.join(5)
    assert time.monotonic() - t0 < 1.0
    tags = [m.tag for m in job.message_out]
    assert tags[:4] == ["SEC_B", "SEC_D", "SEC_B", "SEC_D"]
    sec_d = [m.table.to_pylist()[0] for m in job.message_out if m.tag == "SEC_D"]
    assert list(sec_d[0]) == ["timestamp", "lemo_0", "lemo_1", "lemo_2"]
    assert sec_d[-1]["lemo_0"] > sec_d[0]["lemo_0"] and sec_d[-1]["lemo_1"] == 0
    sec_b = next(m for m in job.message_out if m.tag == "SEC_B").table
    assert sec_b.column_names == ["timestamp", "lemo_0", "lemo_1", "lemo_2", "lemo_3"]


# -- the websocket client against a local N1081B --------------------------------------------
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeN1081B:
    """A websocket server (RFC 6455, text frames) answering the N1081B's JSON commands."""

    def __init__(self, password: str, answer: bool = True, counters: bool = True) -> None:
        self.password, self.answer, self.counters = password, answer, counters
        self.requests: list[dict[str, Any]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.close()
        self._thread.join(2)

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(1024)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            try:
                while (text := self._read_frame(conn)) is not None:
                    command = json.loads(text)
                    self.requests.append(command)
                    if self.answer:
                        self._send(conn, json.dumps(self._reply(command)))
            except OSError:
                return

    def _reply(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["command"] == "login":
            return {"command": "login", "Result": command.get("pwd") == self.password}
        section = command["params"]["section"]
        data = (
            {"counters": [{"lemo": i, "value": 100 * section + i} for i in range(4)]} if self.counters else {}
        )
        return {"command": command["command"], "Result": True, "data": data}

    @staticmethod
    def _read_frame(conn: socket.socket) -> str | None:
        head = conn.recv(2)
        if len(head) < 2 or head[0] & 0x0F == 0x8:  # closed, or a close frame
            return None
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", conn.recv(2))[0]
        mask = conn.recv(4)
        payload = b""
        while len(payload) < length:
            payload += conn.recv(length - len(payload))
        return bytes(b ^ mask[i % 4] for i, b in enumerate(payload)).decode()

    @staticmethod
    def _send(conn: socket.socket, text: str) -> None:
        data = text.encode()
        header = (
            bytes([0x81, len(data)]) if len(data) < 126 else bytes([0x81, 126]) + struct.pack("!H", len(data))
        )
        conn.sendall(header + data)


@pytest.fixture
def websocket_module() -> Any:
    return pytest.importorskip("websocket", reason="websocket-client (enrgdaq[caen]) is not installed")


@pytest.fixture
def unit() -> Iterator[FakeN1081B]:
    server = FakeN1081B("pw-0f-unit")
    yield server
    server.close()


def _with_port(port: int) -> DAQJobN1081BConfig:
    """A real unit's config (no ``simulate``) on ``port``; the port as a number, which is fine too."""
    text = BASE.replace('"8080"', str(port)) + "poll_interval_seconds = 0.05\n" + STORE
    return decode(text, DAQJobN1081BConfig, "n1081b.toml")


def test_the_client_logs_in_and_reads_the_sections_counters(websocket_module: Any, unit: FakeN1081B) -> None:
    job = DAQJobN1081B(_with_port(unit.port))
    thread = threading.Thread(target=job.start)
    thread.start()
    wait_for(lambda: len(job.message_out) >= 2, 5, "two tables out")
    job.request_stop()
    thread.join(5)
    assert unit.requests[0] == {"command": "login", "callback": "login", "pwd": "pw-0f-unit"}
    assert unit.requests[1] == {
        "command": "get_function_results",
        "callback": "get_results",
        "params": {"section": 1},
    }
    assert unit.requests[2]["params"] == {"section": 3}
    assert job.message_out[1].tag == "SEC_D"
    assert job.message_out[1].table.to_pylist()[0] == {
        "timestamp": job.message_out[1].table.column("timestamp")[0].as_py(),
        "lemo_0": 300,
        "lemo_1": 301,
        "lemo_2": 302,
        "lemo_3": 303,
    }


def test_a_refused_login_is_a_device_error_without_the_password(websocket_module: Any) -> None:
    server = FakeN1081B("another-password")
    try:
        job = DAQJobN1081B(_with_port(server.port))
        with pytest.raises(DeviceError, match="refused the login") as err:
            job.start()
        assert "pw-0f-unit" not in str(err.value)
    finally:
        server.close()


def test_a_section_without_counters_is_a_device_error(websocket_module: Any) -> None:
    server = FakeN1081B("pw-0f-unit", counters=False)
    try:
        with pytest.raises(DeviceError, match="SEC_B reports no counters"):
            DAQJobN1081B(_with_port(server.port)).start()
    finally:
        server.close()


def test_a_silent_unit_is_waited_for_in_slices_a_stop_ends_it_within_a_second(websocket_module: Any) -> None:
    server = FakeN1081B("pw-0f-unit", answer=False)
    try:
        job = DAQJobN1081B(_with_port(server.port))
        errors: list[BaseException] = []
        thread = threading.Thread(target=lambda: _run(job, errors))
        thread.start()
        wait_for(lambda: server.requests, 5, "the login request")  # the login is waiting for its answer
        t0 = time.monotonic()
        job.request_stop()
        thread.join(5)
        assert time.monotonic() - t0 < 1.0 and errors == []
    finally:
        server.close()


def test_nobody_listening_is_a_device_error_naming_the_unit(websocket_module: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(DeviceError, match=f"N1081B at 127.0.0.1:{port}"):
        DAQJobN1081B(_with_port(port)).start()


def _run(job: DAQJobN1081B, errors: list[BaseException]) -> None:
    try:
        job.start()
    except BaseException as exc:
        errors.append(exc)


def test_without_websocket_client_the_class_stays_and_a_real_unit_names_the_extra() -> None:
    """The original's class vanished when its SDK was missing; here only a real unit needs it."""
    import subprocess
    import sys

    script = f"""
import sys
sys.modules["websocket"] = None  # import websocket now fails, as without the extra
from enrgdaq.config.decode import decode
from enrgdaq.daq.types import get_daq_job_class
from enrgdaq.errors import DeviceLibraryMissingError
cls = get_daq_job_class("DAQJobN1081B")
text = {BASE + STORE!r}
job = cls(decode(text, cls.config_type, "n1081b.toml"))
try:
    job.start()
except DeviceLibraryMissingError as exc:
    print("MISSING:", exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "MISSING:" in result.stdout, result.stdout + result.stderr
    assert "pip install 'enrgdaq[caen]'" in result.stdout
