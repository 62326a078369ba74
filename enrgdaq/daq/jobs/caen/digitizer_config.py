"""``DAQJobCAENDigitizerConfig``: the original's fields, decoded strictly and range-checked.

The digitizer is assumed to be what the original was written for: 10-bit ADC (0..1023),
1 Vpp input, 1 GS/s, at most 8 channels (V1751 / DT5751 class). Values in mV are converted
with 1024 counts per 1000 mV, as in the original.

Enumerated settings take the binding's numbers (``sw_trigger_mode = 1``, as in the original's
files) or their names (``sw_trigger_mode = "ACQ_ONLY"``).
"""

from __future__ import annotations

import shlex
from enum import IntEnum, StrEnum
from typing import Annotated, Literal, TypeVar

import msgspec

from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.store.models import DAQJobStoreConfig
from enrgdaq.errors import ConfigValueError

ADC_MAX = 1023
"""Largest value of the 10-bit ADC."""
MV_TO_LSB = 1024 / 1000
"""ADC counts per mV (1 Vpp over 10 bits)."""
MAX_CHANNELS = 8
"""Channels of the digitizers this job is written for; masks have 8 bits."""
DC_OFFSET_MAX = 65535
"""The DC offset DAC is 16 bits."""
MAX_RECORD_LENGTH = 65536
"""``sample_index`` is a u16 column, so a record holds at most 65536 samples."""
SIMULATED = "SIMULATED"

E = TypeVar("E", bound=IntEnum)
Mask = Annotated[int, msgspec.Meta(ge=0, le=2**MAX_CHANNELS - 1)]
Millivolts = Annotated[int, msgspec.Meta(ge=0, le=1000)]


class TriggerMode(IntEnum):
    """The binding's ``TriggerMode`` (CAEN_DGTZ_TriggerMode_t)."""

    DISABLED = 0
    ACQ_ONLY = 1
    EXTOUT_ONLY = 2
    ACQ_AND_EXTOUT = 3

    @property
    def acquires(self) -> bool:
        """Whether a trigger of this source starts an acquisition (not just the TRG-OUT signal)."""
        return self in (TriggerMode.ACQ_ONLY, TriggerMode.ACQ_AND_EXTOUT)


class TriggerPolarity(IntEnum):
    """The binding's ``TriggerPolarity``: which edge through the threshold triggers."""

    ON_RISING_EDGE = 0
    ON_FALLING_EDGE = 1


class AcqMode(IntEnum):
    """The binding's ``AcqMode``: what starts and stops the acquisition."""

    SW_CONTROLLED = 0
    S_IN_CONTROLLED = 1
    FIRST_TRG_CONTROLLED = 2
    LVDS_CONTROLLED = 3


class IOLevel(IntEnum):
    """The binding's ``IOLevel`` of the front-panel LEMO signals."""

    NIM = 0
    TTL = 1


class BaselinePosition(StrEnum):
    """Where the baseline sits in the ADC range; signals go the other way."""

    TOP = "TOP"
    MIDDLE = "MIDDLE"
    BOTTOM = "BOTTOM"

    def target_lsb(self) -> int:
        return {BaselinePosition.TOP: ADC_MAX, BaselinePosition.MIDDLE: 512, BaselinePosition.BOTTOM: 0}[self]


TriggerModeName = Literal["DISABLED", "ACQ_ONLY", "EXTOUT_ONLY", "ACQ_AND_EXTOUT"]
TriggerPolarityName = Literal["ON_RISING_EDGE", "ON_FALLING_EDGE"]
AcqModeName = Literal["SW_CONTROLLED", "S_IN_CONTROLLED", "FIRST_TRG_CONTROLLED", "LVDS_CONTROLLED"]
IOLevelName = Literal["NIM", "TTL"]

ConnectionType = Literal["USB", "PCI_EXPRESS_A4818", "PCI_EXPRESS_A2818", "OPTICAL_LINK", "SIMULATED"]


class DAQJobCAENDigitizerConfig(DAQJobConfig, kw_only=True):
    """A CAEN digitizer read out in software-controlled acquisition.

    Attributes:
        connection_type: ``USB``, ``OPTICAL_LINK``, ``PCI_EXPRESS_A2818`` (an optical link through
            an A2818/A3818 card), ``PCI_EXPRESS_A4818`` (the A4818 USB-CONET adapter), or
            ``SIMULATED`` (*new*: a simulated digitizer, no hardware or library needed).
        link_number: link (optical, USB) or device number; required unless ``SIMULATED``.
        conet_node: CONET node on the optical link. vme_base_address: VME base address (0: none).
        record_length: samples per channel and event (1..65536).
        channel_enable_mask: channels read out (bit n: channel n).
        channel_self_trigger_threshold_mv: self-trigger threshold, mV from the baseline
            position; converted to ADC counts and clamped to 0..1023.
        channel_self_trigger_channel_mask: channels whose self-trigger starts an acquisition.
        trigger_polarity: 0 rising edge (signal crosses baseline + threshold upward),
            1 falling edge (crosses baseline - threshold downward).
        channel_dc_offsets: channel -> DC offset DAC value (0..65535); channels not named keep
            the board's default.
        sw_trigger_mode / ext_trigger_mode: software / external trigger (0 disabled, 1 acquisition,
            2 TRG-OUT only, 3 both).
        max_num_events_blt: events read per block transfer (1..1023).
        acquisition_mode: 0 software controlled.
        filter_threshold_mv: samples closer than this to the event's baseline are not stored.
        event_filter_out_peak_threshold: events whose largest deviation from the baseline (mV) is
            below this are not stored at all; 0 (the default) keeps every event.
        io_level: 0 NIM, 1 TTL. post_trigger_size: percent of the record after the trigger.
        waveform_store_config / stats_store_config: where waveform rows and the once-a-second stats
            go (none: not sent).
        baseline_position: ``TOP`` (1023: signals go negative), ``MIDDLE`` (512), ``BOTTOM`` (0).
        save_npy_lz4 / output_filename: kept so that the original's files decode; ``true`` is refused
            (those files were pickled numpy dicts: send waveforms to ``[waveform_store_config.parquet]``).
        restart_driver_command: a program and its arguments, run before the device is opened (a
            driver reload); split like a shell command line (``shlex``) but never run by a shell:
            no pipes, ``;``, ``$VAR`` or globs. Must exit 0 within 120 s, else the run ends with a
            device error. Not run for ``SIMULATED``.
        simulated_trigger_rate_hz: (*new*) rate of pulses the simulated digitizer sees; which of
            them trigger depends on the thresholds (default 100 Hz).
    """

    connection_type: ConnectionType
    link_number: str | None = None
    conet_node: Annotated[int, msgspec.Meta(ge=0, le=255)] = 0
    vme_base_address: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)] = 0
    record_length: Annotated[int, msgspec.Meta(ge=1, le=MAX_RECORD_LENGTH)] = 1024
    channel_enable_mask: Mask = 1
    channel_self_trigger_threshold_mv: Millivolts = 100
    channel_self_trigger_channel_mask: Mask = 0
    trigger_polarity: TriggerPolarity | TriggerPolarityName = TriggerPolarity.ON_RISING_EDGE
    channel_dc_offsets: dict[int | str, int] = msgspec.field(default_factory=dict)
    sw_trigger_mode: TriggerMode | TriggerModeName = TriggerMode.DISABLED
    ext_trigger_mode: TriggerMode | TriggerModeName = TriggerMode.DISABLED
    max_num_events_blt: Annotated[int, msgspec.Meta(ge=1, le=1023)] = 1
    acquisition_mode: AcqMode | AcqModeName = AcqMode.SW_CONTROLLED
    filter_threshold_mv: Millivolts = 50
    event_filter_out_peak_threshold: Millivolts = 0
    io_level: IOLevel | IOLevelName = IOLevel.NIM
    post_trigger_size: Annotated[int, msgspec.Meta(ge=0, le=100)] = 80
    waveform_store_config: DAQJobStoreConfig | None = None
    stats_store_config: DAQJobStoreConfig | None = None
    baseline_position: BaselinePosition = BaselinePosition.TOP
    save_npy_lz4: bool = False
    output_filename: str | None = None
    restart_driver_command: str | None = None
    simulated_trigger_rate_hz: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 100.0

    def __post_init__(self) -> None:
        self.trigger_polarity = _member(TriggerPolarity, self.trigger_polarity)
        self.sw_trigger_mode = _member(TriggerMode, self.sw_trigger_mode)
        self.ext_trigger_mode = _member(TriggerMode, self.ext_trigger_mode)
        self.acquisition_mode = _member(AcqMode, self.acquisition_mode)
        self.io_level = _member(IOLevel, self.io_level)
        self.channel_dc_offsets = _dc_offsets(self.channel_dc_offsets)
        if self.connection_type != SIMULATED and not self.link_number:
            raise ConfigValueError(
                f"link_number is required for connection_type '{self.connection_type}' "
                '(the link or device number, e.g. "0")'
            )
        if self.link_number and not self.link_number.isdigit():
            raise ConfigValueError(f"link_number '{self.link_number}' must be a number, e.g. \"0\"")
        if self.save_npy_lz4:
            raise ConfigValueError(
                "save_npy_lz4 = true is not supported (its files were pickled numpy dicts): send the "
                "waveforms to a store instead, e.g. [waveform_store_config.parquet]"
            )
        if self.restart_driver_command is not None:
            self.restart_driver_argv()

    @property
    def simulated(self) -> bool:
        return self.connection_type == SIMULATED

    def restart_driver_argv(self) -> list[str]:
        """``restart_driver_command`` as the argv it runs (never through a shell)."""
        command = self.restart_driver_command or ""
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigValueError(f"restart_driver_command cannot be split into words: {exc}") from exc
        if not argv:
            raise ConfigValueError("restart_driver_command is empty: remove it or name a program")
        return argv

    def polarity(self) -> TriggerPolarity:
        return _member(TriggerPolarity, self.trigger_polarity)

    def sw_trigger(self) -> TriggerMode:
        return _member(TriggerMode, self.sw_trigger_mode)

    def ext_trigger(self) -> TriggerMode:
        return _member(TriggerMode, self.ext_trigger_mode)

    def acq_mode(self) -> AcqMode:
        return _member(AcqMode, self.acquisition_mode)

    def io(self) -> IOLevel:
        return _member(IOLevel, self.io_level)

    def trigger_threshold_lsb(self) -> int:
        """The self-trigger threshold in ADC counts: baseline position +- threshold (rising /
        falling edge), clamped to the ADC range 0..1023."""
        step = self.channel_self_trigger_threshold_mv * 1024 // 1000
        target = self.baseline_position.target_lsb()
        lsb = target + step if self.polarity() is TriggerPolarity.ON_RISING_EDGE else target - step
        return max(0, min(ADC_MAX, lsb))

    def dc_offsets(self) -> dict[int, int]:
        """``channel_dc_offsets`` with channel numbers as ints (TOML keys are strings)."""
        return {int(k): v for k, v in self.channel_dc_offsets.items()}

    def enabled_channels(self) -> list[int]:
        return [ch for ch in range(MAX_CHANNELS) if self.channel_enable_mask >> ch & 1]


def _member(enum: type[E], value: int | str) -> E:
    return enum[value] if isinstance(value, str) else enum(value)


def _dc_offsets(offsets: dict[int | str, int]) -> dict[int | str, int]:
    checked: dict[int | str, int] = {}
    for key, value in offsets.items():
        channel = int(key) if isinstance(key, int) or key.isdigit() else -1
        if not 0 <= channel < MAX_CHANNELS:
            raise ConfigValueError(
                f"channel_dc_offsets: channel {key!r} is not a channel number 0..{MAX_CHANNELS - 1}"
            )
        if not 0 <= value <= DC_OFFSET_MAX:
            raise ConfigValueError(
                f"channel_dc_offsets: offset {value} of channel {channel} is outside 0..{DC_OFFSET_MAX}"
            )
        checked[channel] = value
    return checked
