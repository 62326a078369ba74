"""Xiaomi Mijia LYWSD03MMC thermometer over Bluetooth LE: the reading, and the real driver (bleak).

The sensor's GATT service ``ebe0ccb0-7a0a-4b0c-8a1a-6ff2997da3a6`` has a
characteristic ``ebe0ccc1-...`` (read and notify) holding 5 bytes, little-endian:
temperature in 0.01 degC (int16), relative humidity in % (uint8) and battery
voltage in mV (uint16). The battery percentage is derived from the voltage as
the original's client did (2.1 V empty, 3.1 V full).

The real driver uses bleak's documented API, ``BleakClient(address, timeout=...)``,
``await client.connect()``, ``await client.read_gatt_char(uuid)`` and
``await client.disconnect()``, one connection per reading (as the original),
inside an event loop of its own that gives up within 0.1 s of a stop request.
bleak is the ``sensors`` extra, imported only when a real sensor is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from enrgdaq.errors import DAQError, DeviceError, DeviceLibraryMissingError

DATA_CHARACTERISTIC_UUID = "ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6"
"""Temperature, humidity and battery voltage (5 bytes, ``<hBH``)."""
DATA_FORMAT = "<hBH"
BATTERY_EMPTY_MV = 2100
BATTERY_FULL_MV = 3100
STOP_CHECK_SECONDS = 0.1


class MijiaReading(NamedTuple):
    temperature: float
    """degC, 0.01 resolution."""
    humidity: int
    """% relative humidity."""
    battery_mv: int
    battery: int
    """% (from the voltage)."""


def battery_percent(millivolts: int) -> int:
    """0-100 % from the cell voltage (2.1 V empty, 3.1 V full)."""
    span = BATTERY_FULL_MV - BATTERY_EMPTY_MV
    return max(0, min(100, round(100 * (millivolts - BATTERY_EMPTY_MV) / span)))


def decode_reading(data: bytes | bytearray) -> MijiaReading:
    """The reading in the data characteristic's value; DeviceError when it is too short."""
    if len(data) < struct.calcsize(DATA_FORMAT):
        raise DeviceError(f"LYWSD03MMC sent {len(data)} bytes, expected {struct.calcsize(DATA_FORMAT)}")
    raw_temperature, humidity, millivolts = struct.unpack_from(DATA_FORMAT, data)
    return MijiaReading(raw_temperature / 100, humidity, millivolts, battery_percent(millivolts))


def encode_reading(temperature: float, humidity: int, battery_mv: int) -> bytes:
    """The characteristic's bytes for a reading (what the sensor would send)."""
    return struct.pack(DATA_FORMAT, round(temperature * 100), humidity, battery_mv)


class MijiaDriver(Protocol):
    """A sensor the job polls. ``read`` returns None when ``should_stop()`` became true while it
    waited, and raises DeviceError when the sensor cannot be reached or answers nonsense."""

    description: str

    def read(self, should_stop: Callable[[], bool]) -> MijiaReading | None: ...

    def close(self) -> None: ...


def load_bleak_client() -> Any:
    """``bleak.BleakClient``; DeviceLibraryMissingError naming the extra when bleak is missing."""
    try:
        from bleak import BleakClient  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise DeviceLibraryMissingError(
            "DAQJobXiaomiMijia (bleak, for a real sensor)", "sensors", exc
        ) from exc
    return BleakClient


class _Stopped(DAQError):
    """The wait was given up because a stop was requested."""


async def _until_stopped(work: Awaitable[MijiaReading], should_stop: Callable[[], bool]) -> MijiaReading:
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=STOP_CHECK_SECONDS)
        if should_stop() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise _Stopped()
    return task.result()


class BleakLywsd03mmc:
    """The real sensor at ``address`` (a MAC, or the UUID macOS gives a peripheral)."""

    def __init__(self, address: str, timeout: float, client_class: Any = None) -> None:
        self.address = address
        self.timeout = timeout
        self._client_class = client_class if client_class is not None else load_bleak_client()
        self.description = f"LYWSD03MMC {address}"

    async def _read_once(self) -> MijiaReading:
        client = self._client_class(self.address, timeout=self.timeout)
        try:
            await client.connect()
            data = await client.read_gatt_char(DATA_CHARACTERISTIC_UUID)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        return decode_reading(bytes(data))

    def read(self, should_stop: Callable[[], bool]) -> MijiaReading | None:
        try:
            return asyncio.run(_until_stopped(self._read_once(), should_stop))
        except _Stopped:
            return None
        except DeviceError:
            raise
        except Exception as exc:  # whatever bleak or the OS's Bluetooth stack raised
            raise DeviceError(f"{self.description}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Nothing is held between readings (each one connects and disconnects)."""
