"""The real digitizer, through CAEN's Python binding ``caen_libs.caendigitizer`` (``enrgdaq[caen]``).

The binding is imported when the device is opened, never at import time: without it (or
without CAEN's C library libCAENDigitizer, which the binding loads) the run ends with a
:class:`~enrgdaq.errors.DeviceLibraryMissingError`, retried with backoff like any device error.

Every call into the binding is guarded: an error closes the device and ends the run with a
:class:`~enrgdaq.errors.DeviceError` naming what failed (the original's C library called
``exit(1)`` instead, killing the process). The acquisition is stopped (``sw_stop_acquisition``)
and the device closed on every way out.

Tests drive this class with a stand-in object that has the binding's names and records the calls
(tests/unit/test_caen_digitizer_real.py): the binding cannot be installed on the test machine,
since its C library comes only from CAEN's installers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig
from enrgdaq.daq.jobs.caen.digitizer_driver import DriverStats, EventBlock, counter_gaps
from enrgdaq.errors import ConfigValueError, DAQError, DeviceError, DeviceLibraryMissingError

logger = logging.getLogger(__name__)

CONNECTION_TYPES = {
    "USB": "USB",
    "OPTICAL_LINK": "OPTICAL_LINK",
    "PCI_EXPRESS_A2818": "OPTICAL_LINK",  # a CONET optical link through an A2818 / A3818 card
    "PCI_EXPRESS_A4818": "USB_A4818",  # the A4818 USB 3 to CONET adapter
}
"""``connection_type`` -> the binding's ``ConnectionType`` name."""
POLL_SECONDS = 0.001
"""Pause between reads that found no event."""
ADC_BITS = 10


class CAENDigitizerDriver:
    def __init__(
        self,
        config: DAQJobCAENDigitizerConfig,
        binding: Any = None,
        log: logging.Logger | logging.LoggerAdapter[Any] = logger,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._binding = binding
        self._log = log
        self._clock = clock
        self._sleep = sleep
        self._device: Any = None
        self._info: Any = None
        self._acquiring = False
        self._stats = DriverStats()
        self._last_counter: int | None = None

    # -- the driver interface ------------------------------------------------------
    def open(self) -> None:
        dgtz = self._lib()
        c = self.config
        where = f"{c.connection_type} link {c.link_number} node {c.conet_node} base 0x{c.vme_base_address:x}"
        with self._guard(f"opening the digitizer ({where})"):
            kind = dgtz.ConnectionType[CONNECTION_TYPES[c.connection_type]]
            self._device = dgtz.Device.open(kind, int(c.link_number or 0), c.conet_node, c.vme_base_address)
            self._info = self._device.get_info()

    def configure(self) -> None:
        dgtz, device, c = self._lib(), self._need_device(), self.config
        channels = int(self._info.channels)
        self._check_channels(channels)
        if int(self._info.adc_n_bits) != ADC_BITS:
            self._log.warning(
                "the board has a %d-bit ADC; value_mv and thresholds assume %d bits and 1 Vpp",
                self._info.adc_n_bits,
                ADC_BITS,
            )
        threshold = c.trigger_threshold_lsb()
        offsets = c.dc_offsets()
        with self._guard("configuring the digitizer"):
            device.reset()
            device.set_record_length(c.record_length)
            device.set_channel_enable_mask(c.channel_enable_mask)
            for ch in range(channels):
                device.set_channel_trigger_threshold(ch, threshold)
                device.set_trigger_polarity(ch, dgtz.TriggerPolarity(int(c.polarity())))
                self_trigger = c.channel_self_trigger_channel_mask >> ch & 1
                mode = dgtz.TriggerMode.ACQ_ONLY if self_trigger else dgtz.TriggerMode.DISABLED
                device.set_channel_self_trigger(mode, 1 << ch)
                if ch in offsets:
                    device.set_channel_dc_offset(ch, offsets[ch])
            device.set_sw_trigger_mode(dgtz.TriggerMode(int(c.sw_trigger())))
            device.set_ext_trigger_input_mode(dgtz.TriggerMode(int(c.ext_trigger())))
            device.set_max_num_events_blt(c.max_num_events_blt)
            device.set_acquisition_mode(dgtz.AcqMode(int(c.acq_mode())))
            device.set_io_level(dgtz.IOLevel(int(c.io())))
            device.set_post_trigger_size(c.post_trigger_size)
            device.calibrate()

    def start(self) -> None:
        device = self._need_device()
        with self._guard("starting the acquisition"):
            device.malloc_readout_buffer()
            device.allocate_event()
            device.sw_start_acquisition()
            self._acquiring = True

    def read(self, timeout_s: float) -> list[EventBlock]:
        dgtz, device = self._lib(), self._need_device()
        deadline = self._clock() + timeout_s
        while True:
            with self._guard("reading events"):
                device.read_data(dgtz.ReadMode.SLAVE_TERMINATED_READOUT_MBLT)
                count = int(device.get_num_events())
                if count:
                    return self._decode(device, count)
            if self._clock() >= deadline:
                return []
            self._sleep(POLL_SECONDS)

    def close(self) -> None:
        """Stop the acquisition and close the device; errors are logged (this runs on the way out)."""
        device, self._device = self._device, None
        if device is None:
            return
        if self._acquiring:
            self._acquiring = False
            try:
                device.sw_stop_acquisition()
            except Exception as exc:
                self._log.warning("stopping the acquisition failed: %s", exc)
        try:
            device.close()
        except Exception as exc:
            self._log.warning("closing the digitizer failed: %s", exc)

    def stats(self) -> DriverStats:
        return DriverStats(**vars(self._stats))

    def describe(self) -> str:
        info = self._info
        if info is None:
            return "CAEN digitizer (not open)"
        return (
            f"{info.model_name} serial {info.serial_number}, {info.channels} channels, "
            f"{info.adc_n_bits}-bit ADC, ROC {info.roc_firmware_rel}, AMC {info.amc_firmware_rel}"
        )

    # -- helpers -------------------------------------------------------------------
    def _lib(self) -> Any:
        if self._binding is None:
            try:
                from caen_libs import caendigitizer  # type: ignore[import-not-found,unused-ignore]
            except (ImportError, OSError, RuntimeError) as exc:
                # RuntimeError: the binding is there but CAEN's C library libCAENDigitizer is not.
                raise DeviceLibraryMissingError(
                    f"DAQJobCAENDigitizer with connection_type '{self.config.connection_type}' "
                    "(CAEN's caen-libs binding and C library libCAENDigitizer)",
                    "caen",
                    exc,
                ) from exc
            self._binding = caendigitizer
        return self._binding

    def _need_device(self) -> Any:
        if self._device is None:
            raise DeviceError("CAEN digitizer: not open (open it before configuring or reading)")
        return self._device

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Binding errors (of any class: the binding raises its own ``Error``, ``RuntimeError``,
        ...) close the device and become a DeviceError."""
        try:
            yield
        except DAQError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise DeviceError(f"CAEN digitizer: {what} failed: {type(exc).__name__}: {exc}") from exc

    def _check_channels(self, channels: int) -> None:
        c = self.config
        named = c.channel_enable_mask | c.channel_self_trigger_channel_mask
        for ch in c.dc_offsets():
            named |= 1 << ch
        if named >> channels:
            self.close()
            raise ConfigValueError(
                f"the channel masks or channel_dc_offsets name channels the board does not have "
                f"({self._info.model_name} has {channels}: 0..{channels - 1})"
            )

    def _decode(self, device: Any, count: int) -> list[EventBlock]:
        """Copy ``count`` events out of the readout buffer, grouped into blocks of equal layout."""
        blocks: list[EventBlock] = []
        layout: tuple[tuple[int, ...], int] | None = None
        records: list[np.ndarray[Any, Any]] = []
        counters: list[int] = []
        tags: list[int] = []
        every_counter: list[int] = []
        for i in range(count):
            info, buffer = device.get_event_info(i)
            data = device.decode_event(buffer).data_channel
            present = tuple(ch for ch, wave in enumerate(data) if len(wave))
            length = min((len(data[ch]) for ch in present), default=0)
            if (present, length) != layout and records:
                blocks.append(_block(layout, records, counters, tags))
                records, counters, tags = [], [], []
            layout = (present, length)
            # A copy: the decoded event is valid only until the next decode.
            records.append(np.stack([data[ch][:length] for ch in present]) if present else np.zeros((0, 0)))
            counters.append(int(info.event_counter))
            tags.append(int(info.trigger_time_tag))
            every_counter.append(counters[-1])
        if records:
            blocks.append(_block(layout, records, counters, tags))
        self._stats.events_lost += counter_gaps(self._last_counter, np.array(every_counter, dtype=np.uint32))
        self._stats.events_read += count
        self._last_counter = every_counter[-1]
        return blocks


def _block(
    layout: tuple[tuple[int, ...], int] | None,
    records: list[np.ndarray[Any, Any]],
    counters: list[int],
    tags: list[int],
) -> EventBlock:
    present = layout[0] if layout else ()
    return EventBlock(
        samples=np.stack(records).astype(np.uint16, copy=False),
        channels=np.array(present, dtype=np.uint8),
        event_counter=np.array(counters, dtype=np.uint32),
        trigger_time_tag=np.array(tags, dtype=np.uint32),
    )
