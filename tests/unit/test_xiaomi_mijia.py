"""DAQJobXiaomiMijia: the sensor's byte format, the simulated sensor, the config, retries and stop,
and the real driver down to bleak's API, against a stand-in client with BleakClient's methods."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from enrgdaq.cli.main import main
from enrgdaq.config.loader import load_job_text
from enrgdaq.daq.jobs.sensor.lywsd03mmc import (
    DATA_CHARACTERISTIC_UUID,
    BleakLywsd03mmc,
    MijiaReading,
    decode_reading,
    encode_reading,
    load_bleak_client,
)
from enrgdaq.daq.jobs.sensor.simulated_mijia import SimulatedLywsd03mmc
from enrgdaq.daq.jobs.sensor.xiaomi_mijia import DAQJobXiaomiMijia, DAQXiaomiMijiaConfig
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow
from enrgdaq.errors import ConfigError, DeviceError, DeviceLibraryMissingError
from tests.harness.waiting import wait_for

STORE = '[store_config.csv]\nfile_path = "xiaomi_mijia.csv"\n'
MAC = "A4:C1:38:12:34:56"


def config(extra: str = "", mac: str = MAC) -> DAQXiaomiMijiaConfig:
    text = f'daq_job_type = "DAQJobXiaomiMijia"\nmac_address = "{mac}"\n{extra}\n{STORE}'
    spec = load_job_text(text, "xiaomi_mijia.toml")
    assert isinstance(spec.config, DAQXiaomiMijiaConfig)
    return spec.config


# -- the sensor's data ------------------------------------------------------------------------------


def test_the_data_characteristic_decodes_as_the_sensor_sends_it() -> None:
    # 22.16 degC, 23 %, 3001 mV: bytes as the LYWSD03MMC sends them (little-endian <hBH).
    reading = decode_reading(bytes([0xA8, 0x08, 0x17, 0xB9, 0x0B]))
    assert reading == MijiaReading(22.16, 23, 3001, 90)
    assert decode_reading(encode_reading(-5.5, 99, 2100)) == MijiaReading(-5.5, 99, 2100, 0)
    assert decode_reading(encode_reading(30.0, 50, 3300)).battery == 100
    with pytest.raises(DeviceError, match="sent 3 bytes"):
        decode_reading(b"\x01\x02\x03")


def test_the_simulated_sensor_drifts_like_a_room_over_a_day() -> None:
    now = [1_800_000_000.0]
    sensor = SimulatedLywsd03mmc(MAC, clock=lambda: now[0])
    readings = []
    for _ in range(8640):  # a day at the default 10 s poll
        now[0] += 10
        reading = sensor.read(lambda: False)
        assert reading is not None
        readings.append(reading)
    temperatures = [r.temperature for r in readings]
    humidities = [r.humidity for r in readings]
    assert all(15 < t < 30 for t in temperatures) and all(25 < h < 65 for h in humidities)
    assert max(temperatures) - min(temperatures) > 1.0  # it moves ...
    assert max(abs(a - b) for a, b in itertools.pairwise(temperatures)) < 0.5  # ... smoothly
    assert all(round(t, 2) == t for t in temperatures)  # the sensor's 0.01 degC
    volts = [r.battery_mv for r in readings]
    assert volts[-1] < volts[0] and all(b <= a for a, b in itertools.pairwise(volts))
    other = SimulatedLywsd03mmc("A4:C1:38:00:00:02", clock=lambda: now[0]).read(lambda: False)
    assert other is not None and other != readings[-1]


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults_are_the_originals() -> None:
    c = config()
    assert (c.poll_interval_seconds, c.connect_retries, c.connect_retry_delay, c.timeout_sec) == (
        10,
        5,
        2.0,
        60.0,
    )
    assert not c.simulate and DAQJobXiaomiMijia.queue == "sensors"
    assert config(mac="a4:c1:38:12:34:56").mac_address == "a4:c1:38:12:34:56"
    assert config(mac="70C40C24-C60B-BB9D-D737-9895C5DA52F3")  # macOS names peripherals by UUID


@pytest.mark.parametrize(
    ("extra", "mac", "field"),
    [
        ("", "AA:BB:CC:DD:EE", "mac_address"),
        ("", "AA-BB-CC-DD-EE-FF", "mac_address"),
        ("poll_interval_seconds = 0", MAC, "poll_interval_seconds"),
        ("connect_retries = 0", MAC, "connect_retries"),
        ("connect_retry_delay = -1", MAC, "connect_retry_delay"),
        ("timeout_sec = 0", MAC, "timeout_sec"),
        ("poll_interval = 5", MAC, "poll_interval"),
    ],
)
def test_bad_values_are_config_errors_naming_the_field(extra: str, mac: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(extra, mac)
    assert caught.value.field == field, caught.value


# -- the real driver, to bleak's API -----------------------------------------------------------------


class StandInBleakClient:
    """Has BleakClient's constructor and the coroutines the driver awaits."""

    made: list[StandInBleakClient] = []
    behaviour: str = "ok"
    payload = encode_reading(21.5, 40, 2950)

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address, self.timeout = address, timeout
        self.calls: list[str] = []
        StandInBleakClient.made.append(self)

    async def connect(self) -> bool:
        self.calls.append("connect")
        if self.behaviour == "unreachable":
            raise TimeoutError(f"Device with address {self.address} was not found")
        if self.behaviour == "slow":
            await asyncio.sleep(30)
        return True

    async def read_gatt_char(self, uuid: str) -> bytearray:
        self.calls.append(f"read {uuid}")
        return bytearray(self.payload)

    async def disconnect(self) -> bool:
        self.calls.append("disconnect")
        return True


@pytest.fixture
def stand_in() -> type[StandInBleakClient]:
    StandInBleakClient.made = []
    StandInBleakClient.behaviour = "ok"
    return StandInBleakClient


def test_the_real_driver_connects_reads_the_data_characteristic_and_disconnects(stand_in) -> None:
    driver = BleakLywsd03mmc(MAC, 12.5, client_class=stand_in)
    assert driver.read(lambda: False) == MijiaReading(21.5, 40, 2950, 85)
    (client,) = stand_in.made
    assert (client.address, client.timeout) == (MAC, 12.5)
    assert client.calls == ["connect", f"read {DATA_CHARACTERISTIC_UUID}", "disconnect"]


def test_an_unreachable_sensor_is_a_device_error_naming_it(stand_in) -> None:
    stand_in.behaviour = "unreachable"
    with pytest.raises(DeviceError, match=f"LYWSD03MMC {MAC}: TimeoutError: Device with address"):
        BleakLywsd03mmc(MAC, 5, client_class=stand_in).read(lambda: False)
    assert stand_in.made[0].calls == ["connect", "disconnect"]


def test_a_stop_ends_a_hanging_connection_within_a_second(stand_in) -> None:
    stand_in.behaviour = "slow"
    asked = time.monotonic() + 0.3
    started = time.monotonic()
    result = BleakLywsd03mmc(MAC, 60, client_class=stand_in).read(lambda: time.monotonic() > asked)
    assert result is None and time.monotonic() - started < 1.3
    assert stand_in.made[0].calls == ["connect", "disconnect"]


def test_without_bleak_the_real_sensor_names_the_extra_to_install() -> None:
    try:
        import bleak  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("bleak is installed here")
    with pytest.raises(DeviceLibraryMissingError, match=r"pip install 'enrgdaq\[sensors\]'"):
        load_bleak_client()
    job = DAQJobXiaomiMijia(config())
    with pytest.raises(DeviceLibraryMissingError):
        job.start()
    job.free()


# -- the job --------------------------------------------------------------------------------------


class FlakySensor:
    """A driver that fails ``failures`` times, then reads."""

    description = "flaky sensor"

    def __init__(self, failures: int) -> None:
        self.failures, self.attempts = failures, 0

    def read(self, should_stop: Callable[[], bool]) -> MijiaReading | None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise DeviceError("not in range")
        return MijiaReading(20.0, 50, 3000, 90)

    def close(self) -> None:
        pass


def test_a_reading_is_tried_connect_retries_times_then_the_run_ends_with_a_device_error() -> None:
    job = DAQJobXiaomiMijia(config("connect_retries = 3\nconnect_retry_delay = 0"))
    assert job.read_with_retries(FlakySensor(2)) == MijiaReading(20.0, 50, 3000, 90)
    always = FlakySensor(10)
    with pytest.raises(DeviceError, match="no reading after 3 attempt"):
        job.read_with_retries(always)
    assert always.attempts == 3
    job.free()


def run_job(job: DAQJobXiaomiMijia) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            job.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_the_simulated_job_sends_rows_and_stops_within_a_second() -> None:
    job = DAQJobXiaomiMijia(config("simulate = true\npoll_interval_seconds = 0.05"))
    thread, errors = run_job(job)
    wait_for(lambda: len(job.message_out) >= 3, 10, "three messages out")
    asked = time.monotonic()
    job.request_stop()
    thread.join(2)
    took = time.monotonic() - asked
    job.free()
    assert not thread.is_alive() and not errors and took < 1.0, (took, errors)
    messages = [m for m in job.message_out if isinstance(m, DAQJobMessageStorePyArrow)]
    assert len(messages) >= 3
    table = messages[0].get_table()
    assert table.column_names == ["timestamp", "temperature", "humidity", "battery"]
    row: dict[str, Any] = table.to_pylist()[0]
    assert 15 < row["temperature"] < 30 and 0 <= row["battery"] <= 100


def test_a_stop_during_the_retry_delay_ends_the_run_within_a_second() -> None:
    job = DAQJobXiaomiMijia(config("connect_retries = 5\nconnect_retry_delay = 30"))
    sensor = FlakySensor(10)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(job.read_with_retries(sensor)))
    thread.start()
    wait_for(lambda: sensor.attempts >= 1, 5, "the first attempt failed: the job waits 30 s now")
    asked = time.monotonic()
    job.request_stop()
    thread.join(2)
    assert not thread.is_alive() and time.monotonic() - asked < 1.0 and result == [None]
    job.free()


def test_the_original_example_passes_check_unchanged(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    upstream = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
    shutil.copy(os.path.join(upstream, "xiaomi_mijia.toml"), tmp_path / "xiaomi_mijia.toml")
    assert main(["check", str(tmp_path)]) == 0
    assert "DAQJobXiaomiMijia 'xiaomi_mijia' on queue 'sensors'" in capsys.readouterr().out
