"""``DAQJobXiaomiMijia``: a Xiaomi Mijia LYWSD03MMC thermometer's readings as rows in a store.

Every ``poll_interval_seconds`` the job connects to the sensor (up to
``connect_retries`` attempts, ``connect_retry_delay`` apart), reads it and sends
one row: ``timestamp`` (unix ms), ``temperature`` (degC), ``humidity`` (%),
``battery`` (%). When every attempt of a poll fails the run ends with a
DeviceError: the supervisor shows it and restarts the job with backoff (the
original logged and went on forever, silently). A stop is seen within 0.1 s,
in the middle of a Bluetooth connection too.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Annotated, ClassVar

import msgspec
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.sensor.lywsd03mmc import BleakLywsd03mmc, MijiaDriver, MijiaReading
from enrgdaq.daq.jobs.sensor.simulated_mijia import SimulatedLywsd03mmc
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig
from enrgdaq.errors import ConfigValueError, DeviceError

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}\Z")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\Z")


class DAQXiaomiMijiaConfig(StorableDAQJobConfig, kw_only=True):
    """Attributes:
    mac_address: the sensor's Bluetooth address, ``AA:BB:CC:DD:EE:FF`` (on macOS the
        peripheral UUID CoreBluetooth gives it is accepted too).
    poll_interval_seconds: seconds between readings (10).
    connect_retries: connection attempts per reading before the run ends with an error (5).
    connect_retry_delay: seconds between attempts (2).
    timeout_sec: Bluetooth connection timeout in seconds (60).
    simulate: use the simulated sensor (*new*): drifting temperature and humidity, a
        draining battery; no Bluetooth or bleak needed.
    """

    mac_address: str
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 10
    connect_retries: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    connect_retry_delay: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 2.0
    timeout_sec: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    simulate: bool = False

    def __post_init__(self) -> None:
        if not (_MAC.match(self.mac_address) or _UUID.match(self.mac_address)):
            raise ConfigValueError(
                f"mac_address '{self.mac_address}' is not a Bluetooth address: write six hex pairs "
                "separated by ':' (AA:BB:CC:DD:EE:FF), as the Xiaomi Home app shows it"
            )


class DAQJobXiaomiMijia(DAQJob):
    config_type = DAQXiaomiMijiaConfig
    config: DAQXiaomiMijiaConfig
    queue: ClassVar[str] = "sensors"

    driver: MijiaDriver | None = None

    def open_driver(self) -> MijiaDriver:
        """The configured sensor: simulated, or the real one over bleak."""
        if self.config.simulate:
            return SimulatedLywsd03mmc(self.config.mac_address)
        return BleakLywsd03mmc(self.config.mac_address, self.config.timeout_sec)

    def start(self) -> None:
        # bleak logs every GATT step at DEBUG; it speaks as loudly as this job, no louder.
        for name in ("bleak", "asyncio"):
            logging.getLogger(name).setLevel(max(self._logger.getEffectiveLevel(), logging.INFO))
        self.driver = self.open_driver()
        self._logger.info("polling %s every %g s", self.driver.description, self.config.poll_interval_seconds)
        due = time.monotonic()
        while not self._has_been_freed:
            reading = self.read_with_retries(self.driver)
            if reading is None:
                break
            self._send(reading)
            due += self.config.poll_interval_seconds
            self.sleep_until(due)
            due = max(due, time.monotonic() - self.config.poll_interval_seconds)

    def read_with_retries(self, driver: MijiaDriver) -> MijiaReading | None:
        """One reading, trying ``connect_retries`` times; None when a stop came first."""
        attempts = self.config.connect_retries
        for attempt in range(1, attempts + 1):
            try:
                return driver.read(lambda: self._has_been_freed)
            except DeviceError as exc:
                if attempt == attempts:
                    raise DeviceError(
                        f"{driver.description}: no reading after {attempts} attempt(s): {exc}"
                    ) from exc
                self._logger.warning(
                    "%s: attempt %d/%d failed: %s", driver.description, attempt, attempts, exc
                )
            self.sleep_until(time.monotonic() + self.config.connect_retry_delay)
            if self._has_been_freed:
                return None
        return None

    def _send(self, reading: MijiaReading) -> None:
        table = pa.table(
            {
                "timestamp": [int(datetime.now().timestamp() * 1000)],
                "temperature": [reading.temperature],
                "humidity": [reading.humidity],
                "battery": [reading.battery],
            }
        )
        self._put_message_out(DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=table))

    def cleanup(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.close()
        super().cleanup()
