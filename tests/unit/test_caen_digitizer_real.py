"""The real digitizer driver, tested to the binding boundary.

CAEN's binding (``caen_libs.caendigitizer``) cannot be installed here: it loads CAEN's C library
libCAENDigitizer at import, which only CAEN's installers provide. The stand-in below has the
binding's names (checked against caen-libs 3.3's ``Device``): enums with the same members,
``Device.open`` and the device methods the driver calls, each recording its call. A name the
driver got wrong is missing here and fails the test, as it would fail on the real binding.
"""

from __future__ import annotations

import importlib.util
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig
from enrgdaq.daq.jobs.caen.digitizer_real import CAENDigitizerDriver
from enrgdaq.errors import ConfigError, DeviceError, DeviceLibraryMissingError

DEVICE_METHODS = {
    *("get_info", "reset", "set_record_length", "set_channel_enable_mask", "set_channel_trigger_threshold"),
    *("set_trigger_polarity", "set_channel_self_trigger", "set_channel_dc_offset", "set_sw_trigger_mode"),
    *("set_ext_trigger_input_mode", "set_max_num_events_blt", "set_acquisition_mode", "set_io_level"),
    *("set_post_trigger_size", "calibrate", "malloc_readout_buffer", "allocate_event"),
    *("sw_start_acquisition", "read_data", "get_num_events", "get_event_info", "decode_event"),
    *("sw_stop_acquisition", "close"),
}


class ConnectionType(IntEnum):
    USB = 0
    OPTICAL_LINK = 1
    USB_A4818 = 5
    ETH_V4718 = 6
    USB_V4718 = 7


class TriggerMode(IntEnum):
    DISABLED = 0
    ACQ_ONLY = 1
    EXTOUT_ONLY = 2
    ACQ_AND_EXTOUT = 3


class TriggerPolarity(IntEnum):
    ON_RISING_EDGE = 0
    ON_FALLING_EDGE = 1


class AcqMode(IntEnum):
    SW_CONTROLLED = 0
    S_IN_CONTROLLED = 1
    FIRST_TRG_CONTROLLED = 2
    LVDS_CONTROLLED = 3


class IOLevel(IntEnum):
    NIM = 0
    TTL = 1


class ReadMode(IntEnum):
    SLAVE_TERMINATED_READOUT_MBLT = 0


class Error(Exception):
    """The binding's error class (caen_libs.caendigitizer.Error)."""


class StandInDevice:
    """A device whose methods record their calls; ``readouts`` are what successive read_data
    calls find, each a list of (counter, time tag, {channel: samples})."""

    def __init__(self, binding: StandInBinding) -> None:
        self.binding = binding
        self.readouts: list[list[tuple[int, int, dict[int, list[int]]]]] = []
        self._current: list[tuple[int, int, dict[int, list[int]]]] = []
        self._decoded = [np.zeros(0, dtype=np.uint16)] * 8

    def __getattr__(self, name: str) -> Any:
        if name not in DEVICE_METHODS:
            raise AttributeError(name)

        def method(*args: Any) -> Any:
            self.binding.calls.append((name, *args))
            if name in self.binding.fail_on:
                raise self.binding.fail_on[name]
            return getattr(self, f"_{name}", lambda *a: None)(*args)

        return method

    def _get_info(self) -> Any:
        return SimpleNamespace(
            model_name="V1751",
            serial_number=123,
            channels=self.binding.channels,
            adc_n_bits=10,
            roc_firmware_rel="04.25",
            amc_firmware_rel="00.08",
        )

    def _read_data(self, mode: ReadMode) -> None:
        self._current = self.readouts.pop(0) if self.readouts else []

    def _get_num_events(self) -> int:
        return len(self._current)

    def _get_event_info(self, i: int) -> tuple[Any, int]:
        counter, tag, _ = self._current[i]
        return SimpleNamespace(event_counter=counter, trigger_time_tag=tag), i

    def _decode_event(self, i: int) -> Any:
        # Like the binding: the decoded arrays are reused, valid only until the next decode.
        channels = self._current[i][2]
        for ch in range(8):
            wave = channels.get(ch, [])
            if len(self._decoded[ch]) != len(wave):
                self._decoded[ch] = np.zeros(len(wave), dtype=np.uint16)
            self._decoded[ch][:] = wave
        return SimpleNamespace(data_channel=list(self._decoded))


class StandInBinding:
    ConnectionType = ConnectionType
    TriggerMode = TriggerMode
    TriggerPolarity = TriggerPolarity
    AcqMode = AcqMode
    IOLevel = IOLevel
    ReadMode = ReadMode
    Error = Error

    def __init__(self, channels: int = 8) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on: dict[str, Exception] = {}
        self.channels = channels
        self.device = StandInDevice(self)
        binding = self

        class Device:
            @classmethod
            def open(cls, kind: ConnectionType, arg: int, conet_node: int, vme_base_address: int) -> Any:
                binding.calls.append(("open", kind, arg, conet_node, vme_base_address))
                if "open" in binding.fail_on:
                    raise binding.fail_on["open"]
                return binding.device

        self.Device = Device

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]


def config(extra: str = "") -> DAQJobCAENDigitizerConfig:
    head = 'daq_job_type = "DAQJobCAENDigitizer"\nconnection_type = "PCI_EXPRESS_A2818"\nlink_number = "2"'
    text = f"{head}\n{extra}\n"
    return decode(text, DAQJobCAENDigitizerConfig, "dig.toml")


def opened(binding: StandInBinding, extra: str = "") -> CAENDigitizerDriver:
    driver = CAENDigitizerDriver(config(extra), binding=binding, sleep=lambda s: None)
    driver.open()
    return driver


def test_open_and_configure_make_the_calls_the_config_asks_for() -> None:
    binding = StandInBinding(channels=4)
    driver = opened(
        binding,
        "conet_node = 1\nvme_base_address = 0x32100000\nchannel_enable_mask = 0b0101\n"
        "channel_self_trigger_channel_mask = 0b0100\ntrigger_polarity = 1\n"
        "channel_dc_offsets = {0 = 1000}\next_trigger_mode = 1\nmax_num_events_blt = 10\n"
        'post_trigger_size = 60\nio_level = "TTL"\nrecord_length = 2048',
    )
    driver.configure()

    threshold = 1023 - 100 * 1024 // 1000  # TOP baseline, falling edge
    per_channel = []
    for ch in range(4):
        per_channel += [
            ("set_channel_trigger_threshold", ch, threshold),
            ("set_trigger_polarity", ch, TriggerPolarity.ON_FALLING_EDGE),
            ("set_channel_self_trigger", TriggerMode.ACQ_ONLY if ch == 2 else TriggerMode.DISABLED, 1 << ch),
        ]
        if ch == 0:
            per_channel.append(("set_channel_dc_offset", 0, 1000))
    assert binding.calls == [
        ("open", ConnectionType.OPTICAL_LINK, 2, 1, 0x32100000),  # an A2818 card is an optical link
        ("get_info",),
        ("reset",),
        ("set_record_length", 2048),
        ("set_channel_enable_mask", 0b0101),
        *per_channel,
        ("set_sw_trigger_mode", TriggerMode.DISABLED),
        ("set_ext_trigger_input_mode", TriggerMode.ACQ_ONLY),
        ("set_max_num_events_blt", 10),
        ("set_acquisition_mode", AcqMode.SW_CONTROLLED),
        ("set_io_level", IOLevel.TTL),
        ("set_post_trigger_size", 60),
        ("calibrate",),
    ]
    assert "V1751 serial 123" in driver.describe()


def test_reads_copy_events_into_blocks_and_count_counter_gaps() -> None:
    binding = StandInBinding()
    driver = opened(binding, "channel_enable_mask = 0b101")
    driver.configure()
    driver.start()
    assert binding.names()[-3:] == ["malloc_readout_buffer", "allocate_event", "sw_start_acquisition"]
    binding.device.readouts = [
        [],
        [(c, 100 * c, {0: [c] * 16, 2: [c + 500] * 16}) for c in (5, 6, 9)],
        [(10, 1000, {0: [7] * 8})],  # another layout: a block of its own
    ]

    (block,) = driver.read(1.0)  # the first readout is empty: read again
    assert binding.names().count("read_data") == 2
    assert block.samples.shape == (3, 2, 16) and block.channels.tolist() == [0, 2]
    assert block.samples[:, 0, 0].tolist() == [5, 6, 9]  # copies, not views of the reused arrays
    assert block.samples[:, 1, 0].tolist() == [505, 506, 509]
    assert block.event_counter.tolist() == [5, 6, 9] and block.trigger_time_tag.tolist() == [500, 600, 900]
    (second,) = driver.read(1.0)
    assert second.samples.shape == (1, 1, 8)
    stats = driver.stats()
    assert (stats.events_read, stats.events_lost) == (4, 2)  # 7 and 8 never came
    assert driver.read(0.0) == []


@pytest.mark.parametrize("failing", ["set_record_length", "calibrate"])
def test_an_error_while_configuring_closes_the_device_and_is_a_device_error(failing: str) -> None:
    binding = StandInBinding()
    binding.fail_on[failing] = Error("Error in CAEN_DGTZ_SetRecordLength: COMM_ERROR")
    driver = opened(binding)
    with pytest.raises(DeviceError, match=r"configuring the digitizer failed: Error: .*COMM_ERROR"):
        driver.configure()
    assert binding.names()[-2:] == [failing, "close"]
    driver.close()  # again: harmless
    assert binding.names().count("close") == 1


def test_an_error_while_reading_stops_the_acquisition_then_closes() -> None:
    binding = StandInBinding()
    driver = opened(binding)
    driver.configure()
    driver.start()
    binding.fail_on["read_data"] = Error("Error in CAEN_DGTZ_ReadData: COMM_ERROR")
    with pytest.raises(DeviceError, match="reading events failed"):
        driver.read(0.5)
    assert binding.names()[-3:] == ["read_data", "sw_stop_acquisition", "close"]


def test_an_error_while_opening_is_a_device_error_naming_the_link() -> None:
    binding = StandInBinding()
    binding.fail_on["open"] = Error("Error in CAEN_DGTZ_OpenDigitizer2: DIGITIZER_NOT_FOUND")
    driver = CAENDigitizerDriver(config(), binding=binding)
    with pytest.raises(DeviceError, match=r"PCI_EXPRESS_A2818 link 2 .*DIGITIZER_NOT_FOUND"):
        driver.open()
    driver.close()
    assert binding.names() == ["open"]


def test_channels_the_board_lacks_are_a_config_error_and_the_device_is_closed() -> None:
    binding = StandInBinding(channels=4)
    driver = opened(binding, "channel_enable_mask = 0b10001")
    with pytest.raises(ConfigError, match="V1751 has 4"):
        driver.configure()
    assert binding.names() == ["open", "get_info", "close"]


def test_without_the_binding_the_error_names_the_extra_to_install() -> None:
    if importlib.util.find_spec("caen_libs") is not None:
        pytest.skip("caen_libs is installed here")
    driver = CAENDigitizerDriver(config())
    with pytest.raises(DeviceLibraryMissingError) as caught:
        driver.open()
    assert "pip install 'enrgdaq[caen]'" in str(caught.value) and "libCAENDigitizer" in str(caught.value)
    driver.close()
