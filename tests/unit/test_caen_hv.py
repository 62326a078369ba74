"""DAQJobCAENHV: strict config, the simulated supply (ramps, trips, set-parameter requests),
the job's tables, its stop, and the real driver down to the caen_libs binding's method names
(a stand-in module: CAEN's C library is not on this machine)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.hv import DAQJobCAENHV, DAQJobMessageCAENHVSetChParam
from enrgdaq.daq.jobs.caen.hv_caen import CAENHVDriver
from enrgdaq.daq.jobs.caen.hv_config import DAQJobCAENHVConfig
from enrgdaq.daq.jobs.caen.hv_driver import ChannelStatus
from enrgdaq.daq.jobs.caen.hv_sim import SimulatedHV
from enrgdaq.errors import ConfigError, DeviceError, DeviceLibraryMissingError, MessagePayloadError
from tests.harness.waiting import wait_for

BASE = """daq_job_type = "DAQJobCAENHV"
system_type = "SY4527"
link_type = "SIMULATED"
connection_arg = "sim"
poll_interval_seconds = 0.05
[store_config.csv]
file_path = "hv.csv"
[timeseries_store_config.memory]
"""


def config(extra: str = "", base: str = BASE, top: str = "") -> DAQJobCAENHVConfig:
    """``top``: keys of the job's own table; ``extra``: tables after the store configs."""
    text = base.replace("[store_config.csv]", top + "[store_config.csv]")
    return decode(text + extra, DAQJobCAENHVConfig, "caen_hv.toml")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sim(clock: Clock, load_mohm: float = 10.0, **defaults: float) -> SimulatedHV:
    values: dict[str, float | int] = {"V0Set": 0.0, "I0Set": 200.0, "RUp": 50.0, "RDwn": 100.0, "Trip": 1.0}
    values.update(SVMax=3000.0, **defaults)
    return SimulatedHV(1, 2, load_mohm, values, clock=clock)


# -- config ----------------------------------------------------------------------------
def test_channels_to_monitor_is_typed_and_unknown_keys_are_errors() -> None:
    c = config("[[channels_to_monitor]]\nslot = 0\nchannels = [0, 2]\n")
    assert c.channels_to_monitor is not None and c.channels_to_monitor[0].channels == [0, 2]
    with pytest.raises(ConfigError, match="chanels"):
        config("[[channels_to_monitor]]\nslot = 0\nchanels = [0]\n")
    with pytest.raises(ConfigError, match="slot"):
        config('[[channels_to_monitor]]\nslot = "zero"\n')
    with pytest.raises(ConfigError, match="more than once"):
        config("[[channels_to_monitor]]\nslot = 1\n[[channels_to_monitor]]\nslot = 1\n")
    with pytest.raises(ConfigError, match="SY4527"):
        config(base=BASE.replace('"SY4527"', '"SY9999"'))


def test_link_type_simulated_picks_the_simulated_supply_and_others_the_binding() -> None:
    assert isinstance(DAQJobCAENHV(config()).make_driver(), SimulatedHV)
    real = DAQJobCAENHV(config(base=BASE.replace('"SIMULATED"', '"TCPIP"'))).make_driver()
    assert isinstance(real, CAENHVDriver)
    real.close()


# -- the simulated supply --------------------------------------------------------------
def test_vmon_ramps_to_v0set_at_rup_and_back_at_rdwn() -> None:
    clock = Clock()
    hv = sim(clock)
    hv.open()
    hv.write(0, [0], "V0Set", 1500.5)  # fractional volts
    hv.write(0, [0], "Pw", 1)
    clock.now += 10
    assert hv.read(0, [0, 1], "VMon") == [pytest.approx(500.0), 0.0]
    assert hv.read(0, [0], "Status")[0] == ChannelStatus.ON | ChannelStatus.RAMP_UP
    assert hv.read(0, [0], "IMon")[0] == pytest.approx(50.0)  # 500 V over 10 MOhm
    clock.now += 30
    assert hv.read(0, [0], "VMon")[0] == pytest.approx(1500.5)
    assert hv.read(0, [0], "Status")[0] == ChannelStatus.ON
    hv.write(0, [0], "Pw", 0)
    clock.now += 5
    assert hv.read(0, [0], "VMon")[0] == pytest.approx(1000.5)  # RDwn 100 V/s
    assert hv.read(0, [0], "Status")[0] == ChannelStatus.RAMP_DOWN


def test_overcurrent_longer_than_trip_switches_the_channel_off_with_the_trip_bit() -> None:
    clock = Clock()
    hv = sim(clock, load_mohm=1.0, I0Set=100.0, Trip=2.0, RUp=1000.0)
    hv.open()
    hv.write(0, [0], "V0Set", 150.0)  # 150 uA through 1 MOhm, above I0Set
    hv.write(0, [0], "Pw", 1)
    clock.now += 1.0
    assert int(hv.read(0, [0], "Status")[0]) & ChannelStatus.OVER_CURRENT
    assert hv.read(0, [0], "Pw")[0] == 1, "tripped before Trip seconds of overcurrent"
    clock.now += 1.5
    assert hv.read(0, [0], "Pw")[0] == 0
    assert hv.read(0, [0], "VMon")[0] == 0.0
    assert hv.read(0, [0], "Status")[0] == ChannelStatus.INTERNAL_TRIP
    hv.write(0, [0], "I0Set", 500.0)
    hv.write(0, [0], "Pw", 1)  # switching on again clears the trip
    clock.now += 1.0
    assert hv.read(0, [0], "Status")[0] == ChannelStatus.ON
    assert hv.read(0, [0], "VMon")[0] == pytest.approx(150.0)


def test_set_requests_are_checked_like_a_real_supply() -> None:
    hv = sim(Clock())
    hv.open()
    with pytest.raises(MessagePayloadError, match="read-only"):
        hv.write(0, [0], "VMon", 10)
    with pytest.raises(MessagePayloadError, match="unknown parameter"):
        hv.write(0, [0], "V0set", 10)
    with pytest.raises(MessagePayloadError, match="whole number"):
        hv.write(0, [0], "Pw", 0.5)
    with pytest.raises(MessagePayloadError, match="SVMax"):
        hv.write(0, [0], "V0Set", 5000)
    with pytest.raises(MessagePayloadError, match="channel 7"):
        hv.write(0, [7], "V0Set", 10)


def test_the_message_takes_fractional_volts_from_json() -> None:
    import msgspec

    raw = b'{"slot": 0, "channel_list": [1, 2], "param_name": "V0Set", "value": 1500.5}'
    message = msgspec.json.decode(raw, type=DAQJobMessageCAENHVSetChParam)
    assert message.value == 1500.5 and message.channel_list == [1, 2]


# -- the job ------------------------------------------------------------------------------
class RecordingSim(SimulatedHV):
    """The simulated supply, noting which thread writes to it."""

    writers: list[str]

    def write(self, slot: int, channels: list[int], param: str, value: Any) -> None:
        self.writers.append(threading.current_thread().name)
        super().write(slot, channels, param, value)


def run_job(job: DAQJobCAENHV) -> threading.Thread:
    thread = threading.Thread(target=job.start, name="job-loop")
    thread.start()
    return thread


def stop_job(job: DAQJobCAENHV, thread: threading.Thread) -> float:
    t0 = time.monotonic()
    job.request_stop()
    thread.join(5)
    assert not thread.is_alive()
    return time.monotonic() - t0


def test_job_emits_ch_param_rows_and_per_parameter_tables_and_applies_sets_on_its_loop() -> None:
    c = config(
        "[simulation]\nchannels = 3\nrup = 500\n", top='params_to_monitor = ["VMon", "V0Set", "Pw", "Nope"]\n'
    )
    job = DAQJobCAENHV(c)
    driver = RecordingSim(1, 3, 10.0, c.simulation.channel_defaults())
    driver.writers = []
    job.make_driver = lambda: driver  # type: ignore[method-assign]
    thread = run_job(job)
    try:
        for param, value in (("V0Set", 250.5), ("Pw", 1)):
            message = DAQJobMessageCAENHVSetChParam(slot=0, channel_list=[1], param_name=param, value=value)
            job.handle_message(message)  # as the receive thread hands it over
        job.handle_message(
            DAQJobMessageCAENHVSetChParam(slot=0, channel_list=[1], param_name="VMon", value=1)
        )

        def reached() -> bool:
            rows = [m for m in job.message_out if m.tag == "ch_param"]
            return bool(rows) and rows[-1].table.to_pylist()[1]["VMon"] == pytest.approx(250.5)

        wait_for(reached, 5, "VMon at its set value")
    finally:
        elapsed = stop_job(job, thread)
    assert elapsed < 1.0
    assert set(driver.writers) == {"job-loop"}, "set-parameter ran beside the loop"
    assert job.counters.failed == 1  # the read-only VMon request, refused, the job went on
    ch_param = [m for m in job.message_out if m.tag == "ch_param"][-1].table
    assert ch_param.column_names == ["timestamp", "slot", "channel", "Pw", "V0Set", "VMon"]
    assert ch_param.column("channel").to_pylist() == [0, 1, 2]
    vmon = [m for m in job.message_out if m.tag == "VMon"][-1].table
    assert vmon.column_names == ["timestamp", "slot_0_channel_0", "slot_0_channel_1", "slot_0_channel_2"]
    assert {m.tag for m in job.message_out} == {"ch_param", "VMon", "V0Set", "Pw"}


def test_channels_to_monitor_limits_the_rows() -> None:
    c = config("[[channels_to_monitor]]\nslot = 1\nchannels = [2, 9]\n[simulation]\nboards = 2\n")
    job = DAQJobCAENHV(c)
    thread = run_job(job)
    try:
        wait_for(lambda: any(m.tag == "ch_param" for m in job.message_out), 5, "a ch_param table")
    finally:
        stop_job(job, thread)
    rows = next(m for m in job.message_out if m.tag == "ch_param").table.to_pylist()
    assert [(r["slot"], r["channel"]) for r in rows] == [(1, 2)]


def test_a_long_poll_interval_still_stops_within_a_second() -> None:
    job = DAQJobCAENHV(config(base=BASE.replace("0.05", "3600")))
    thread = run_job(job)
    wait_for(lambda: job.message_out, 5, "a message out")
    assert stop_job(job, thread) < 1.0


# -- the real driver, to the binding's boundary -------------------------------------------
class ParamType(IntEnum):
    NUMERIC = 0
    ONOFF = 1
    CHSTATUS = 2
    STRING = 5


class ParamMode(IntEnum):
    RDONLY = 0
    WRONLY = 1
    RDWR = 2


class BindingError(RuntimeError):
    def __init__(self, code: str) -> None:
        self.code = SimpleNamespace(name=code)
        super().__init__(f"CAENHV_SetChParam failed: ({code})")


@dataclass
class Board:
    slot: int
    model: str
    description: str
    serial_number: int
    n_channel: int


PROPS = {
    "V0Set": (ParamType.NUMERIC, ParamMode.RDWR),
    "VMon": (ParamType.NUMERIC, ParamMode.RDONLY),
    "Pw": (ParamType.ONOFF, ParamMode.RDWR),
    "Status": (ParamType.CHSTATUS, ParamMode.RDONLY),
    "ClrAlarm": (ParamType.ONOFF, ParamMode.WRONLY),
}


class Device:
    """A stand-in of ``caenhvwrapper.Device`` with the binding's method names and types."""

    opened: list[tuple[Any, ...]] = []
    instances: list[Device] = []
    open_allowed = threading.Event()  # cleared: open() hangs until it is set
    fail_reads = False

    def __init__(self) -> None:
        self.values: dict[tuple[int, int, str], Any] = {}
        self.sets: list[tuple[int, list[int], str, Any]] = []
        self.closed = False

    @classmethod
    def open(
        cls, system_type: Any, link_type: Any, arg: str, username: str = "", password: str = ""
    ) -> Device:
        cls.opened.append((system_type, link_type, arg, username, password))
        cls.open_allowed.wait()
        cls.instances.append(cls())
        return cls.instances[-1]

    def get_crate_map(self) -> tuple[Board | None, ...]:
        return (None, Board(1, "A1535SN", "24 Ch Neg. 3.5KV", 42, 2))

    def get_ch_param_info(self, slot: int, channel: int) -> tuple[str, ...]:
        return tuple(PROPS)

    def get_ch_param_prop(self, slot: int, channel: int, name: str) -> Any:
        kind, mode = PROPS[name]
        return SimpleNamespace(type=kind, mode=mode)

    def get_ch_param(self, slot: int, channel_list: list[int], name: str) -> list[Any]:
        if Device.fail_reads:
            raise BindingError("COMMUNICATIONERROR")
        if PROPS[name][1] is ParamMode.WRONLY:
            raise BindingError("NOTGETPROP")
        return [self.values.get((slot, ch, name), 0) for ch in channel_list]

    def set_ch_param(self, slot: int, channel_list: list[int], name: str, value: Any) -> None:
        if isinstance(value, float) and PROPS[name][0] is not ParamType.NUMERIC:
            raise TypeError("the C type of this parameter is an integer")
        if name == "V0Set" and value > 3500:
            raise BindingError("OUTOFRANGE")
        self.sets.append((slot, list(channel_list), name, value))

    def close(self) -> None:
        self.closed = True


class SystemType(IntEnum):
    SY4527 = 2
    N568 = 4


class LinkType(IntEnum):
    TCPIP = 0


def binding() -> Any:
    Device.opened = []
    Device.instances = []
    Device.fail_reads = False
    Device.open_allowed.set()
    return SimpleNamespace(
        Device=Device, SystemType=SystemType, LinkType=LinkType, ParamType=ParamType, ParamMode=ParamMode,
        Error=BindingError,
    )  # fmt: skip


def real_driver(stop: threading.Event, system_type: str = "SY4527", hv: Any = None) -> CAENHVDriver:
    return CAENHVDriver(system_type, "TCPIP", "10.0.0.7", "admin", "s3cret-pw", stop.is_set, hv or binding())


def test_real_driver_opens_reads_skips_write_only_and_converts_set_values() -> None:
    stop = threading.Event()
    driver = real_driver(stop)
    try:
        boards = driver.open()
        assert Device.opened == [(SystemType.SY4527, LinkType.TCPIP, "10.0.0.7", "admin", "s3cret-pw")]
        assert [(b.slot, b.model, b.n_channel) for b in boards] == [(1, "A1535SN", 2)]
        assert driver.readable_params(1, 0) == ["V0Set", "VMon", "Pw", "Status"]  # ClrAlarm is write-only
        driver.write(1, [0, 1], "V0Set", 1500)
        driver.write(1, [0], "Pw", 1.0)  # JSON may carry 1.0: the binding wants an int for ONOFF
        device = driver._device
        assert device.sets == [(1, [0, 1], "V0Set", 1500.0), (1, [0], "Pw", 1)]
        assert isinstance(device.sets[0][3], float) and isinstance(device.sets[1][3], int)
        with pytest.raises(MessagePayloadError, match="OUTOFRANGE"):
            driver.write(1, [0], "V0Set", 9000)
        with pytest.raises(MessagePayloadError, match="read-only"):
            driver.write(1, [0], "VMon", 1)
        with pytest.raises(MessagePayloadError, match="no parameter 'V1Set'"):
            driver.write(1, [0], "V1Set", 1)
        assert driver.read(1, [0, 1], "V0Set") == [0, 0]
    finally:
        driver.close()
    wait_for(lambda: device.closed, 5, "the device closed")


def test_real_driver_maps_n568b_and_turns_binding_errors_into_device_errors() -> None:
    stop = threading.Event()
    driver = real_driver(stop, system_type="N568B")
    try:
        driver.open()
        assert Device.opened[0][0] is SystemType.N568
        Device.fail_reads = True
        with pytest.raises(DeviceError, match="COMMUNICATIONERROR") as err:
            driver.read(1, [0], "VMon")
        assert "s3cret-pw" not in str(err.value)
    finally:
        driver.close()


def test_a_job_whose_device_fails_ends_with_device_error_after_closing_it(caplog: Any) -> None:
    job = DAQJobCAENHV(config(base=BASE.replace('"SIMULATED"', '"TCPIP"'), top='password = "s3cret-pw"\n'))
    stand_in = binding()
    job.make_driver = lambda: real_driver(threading.Event(), hv=stand_in)  # type: ignore[method-assign]
    Device.fail_reads = True
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeviceError, match="cannot read"):
        job.start()
    assert "s3cret-pw" not in caplog.text
    # closed by the job before its run ended
    wait_for(lambda: Device.instances[0].closed, 5, "the device closed")


def test_stop_is_honoured_within_a_second_while_the_binding_hangs() -> None:
    stop = threading.Event()
    hv = binding()
    Device.open_allowed.clear()
    driver = real_driver(stop, hv=hv)
    errors: list[BaseException] = []

    def opening() -> None:
        try:
            driver.open()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=opening)
    thread.start()
    wait_for(lambda: Device.opened, 5, "an open call")
    t0 = time.monotonic()
    stop.set()
    thread.join(2)
    elapsed = time.monotonic() - t0
    Device.open_allowed.set()
    driver.close()
    assert elapsed < 1.0 and not thread.is_alive()
    assert errors and type(errors[0]).__name__ == "DAQJobStopError"


def test_without_the_binding_the_real_driver_names_the_extra() -> None:
    driver = CAENHVDriver("SY4527", "TCPIP", "10.0.0.7", "", "", lambda: False)
    try:
        with pytest.raises(DeviceLibraryMissingError, match=r"enrgdaq\[caen\]"):
            driver.open()  # caen_libs absent, or present without CAEN's C library
    finally:
        driver.close()
