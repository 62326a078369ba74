"""The real CAEN HV driver, over CAEN's binding ``caen_libs.caenhvwrapper`` (``enrgdaq[caen]``).

The binding loads CAEN's C library (CAENHVWrapper) when it is imported, so it is imported
only when a real device is opened: without it the job ends its run with
:class:`~enrgdaq.errors.DeviceLibraryMissingError` (retried with backoff; installing the extra
heals it). The C calls block (opening an unreachable mainframe takes the library's own
timeout), so they run on one thread of their own, one at a time; the job waits for each in
short slices and can stop within a second even while a call hangs: the call is then left
to finish on its thread and the device is closed there after it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from enrgdaq.daq.jobs.caen.hv_driver import HVBoard, ParamKind, ParamValue, coerce_value
from enrgdaq.errors import DAQJobStopError, DeviceError, DeviceLibraryMissingError, MessagePayloadError

logger = logging.getLogger(__name__)

T = TypeVar("T")
WAIT_SLICE_SECONDS = 0.05
SYSTEM_TYPE_NAMES = {"N568B": "N568"}
"""Config names whose binding enum member is spelled differently."""
REQUEST_ERRORS = {
    "OUTOFRANGE",
    "PARAMNOTFOUND",
    "PARAMPROPNOTFOUND",
    "INVALIDPARAMETER",
    "NOTSETPROP",
    "SETPROPNOTIMPL",
    "SLOTNOTPRES",
}
"""Error codes of a set request that the device refused; the device itself is fine."""


def load_binding() -> ModuleType:
    """``caen_libs.caenhvwrapper``, or the error that says how to get it."""
    try:
        from caen_libs import caenhvwrapper  # type: ignore[import-not-found,unused-ignore]
    except (ImportError, OSError) as exc:  # OSError: the package is there, CAEN's C library is not
        raise DeviceLibraryMissingError("DAQJobCAENHV (a real CAEN HV system)", "caen", exc) from exc
    return caenhvwrapper


class SerialCaller:
    """Runs calls one at a time on a daemon thread of its own; the caller waits in slices and
    gives up (``DAQJobStopError``) as soon as ``should_stop()`` says so."""

    def __init__(self, name: str, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._calls.put((fn, answer))
        while True:
            try:
                ok, result = answer.get(timeout=WAIT_SLICE_SECONDS)
            except queue.Empty:
                if self._should_stop():
                    raise DAQJobStopError("stop requested while the device was busy") from None
                continue
            if ok:
                return result  # type: ignore[no-any-return,unused-ignore]
            raise result

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` after what is queued, without waiting for it."""
        self._calls.put((fn, queue.SimpleQueue()))

    def finish(self) -> None:
        """No more calls: the thread ends once what is queued has run."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, answer = item
            try:
                answer.put((True, fn()))
            except BaseException as exc:  # handed to the waiting caller
                answer.put((False, exc))


class CAENHVDriver:
    """:class:`~enrgdaq.daq.jobs.caen.hv_driver.HVDriver` of a real system. ``binding`` is the
    ``caenhvwrapper`` module (loaded on ``open`` when not given)."""

    def __init__(
        self,
        system_type: str,
        link_type: str,
        connection_arg: str,
        username: str,
        password: str,
        should_stop: Callable[[], bool],
        binding: ModuleType | None = None,
    ) -> None:
        self._system_type = system_type
        self._link_type = link_type
        self._arg = connection_arg
        self._credentials = (username, password)
        self._binding = binding
        self._caller = SerialCaller(f"caen-hv-{connection_arg}", should_stop)
        self._device: Any = None
        self._kinds: dict[tuple[int, int, str], tuple[ParamKind, bool]] = {}

    @property
    def where(self) -> str:
        return f"CAEN HV {self._system_type} over {self._link_type} at '{self._arg}'"

    def open(self) -> list[HVBoard]:
        hv = self._binding = self._binding or load_binding()
        system = hv.SystemType[SYSTEM_TYPE_NAMES.get(self._system_type, self._system_type)]
        link = hv.LinkType[self._link_type]
        user, password = self._credentials
        self._device = self._call(lambda: hv.Device.open(system, link, self._arg, user, password), "open")
        crate = self._call(self._device.get_crate_map, "read the crate map")
        return [HVBoard(b.slot, str(b.model), int(b.n_channel)) for b in crate if b is not None]

    def readable_params(self, slot: int, channel: int) -> list[str]:
        names = self._call(lambda: self._device.get_ch_param_info(slot, channel), "list parameters")
        return [n for n in names if self._kind(slot, channel, n)[1]]

    def read(self, slot: int, channels: list[int], param: str) -> list[ParamValue]:
        values = self._call(lambda: self._device.get_ch_param(slot, channels, param), f"read {param}")
        return list(values)

    def write(self, slot: int, channels: list[int], param: str, value: ParamValue) -> None:
        if not channels:
            return
        names = self._call(lambda: self._device.get_ch_param_info(slot, channels[0]), "list parameters")
        if param not in names:
            raise MessagePayloadError(
                f"slot {slot} channel {channels[0]} has no parameter '{param}'; it has: {', '.join(names)}",
                field="payload.param_name",
            )
        prop = self._call(lambda: self._device.get_ch_param_prop(slot, channels[0], param), "read a property")
        hv = self._binding
        assert hv is not None
        if prop.mode == hv.ParamMode.RDONLY:
            raise MessagePayloadError(f"{param} is read-only", field="payload.param_name")
        coerced = coerce_value(param, self._kind_of(prop), value)
        self._call(
            lambda: self._device.set_ch_param(slot, channels, param, coerced), f"set {param}", request=True
        )

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            self._caller.submit(lambda: _close_quietly(device))  # after a call that may still hang
        self._caller.finish()

    # -- helpers -------------------------------------------------------------------
    def _kind(self, slot: int, channel: int, name: str) -> tuple[ParamKind, bool]:
        """The parameter's kind and whether it can be read (cached: one call per parameter)."""
        key = (slot, channel, name)
        if key not in self._kinds:
            prop = self._call(lambda: self._device.get_ch_param_prop(slot, channel, name), "read a property")
            hv = self._binding
            assert hv is not None
            self._kinds[key] = (self._kind_of(prop), prop.mode != hv.ParamMode.WRONLY)
        return self._kinds[key]

    def _kind_of(self, prop: Any) -> ParamKind:
        hv = self._binding
        assert hv is not None
        if prop.type == hv.ParamType.NUMERIC:
            return ParamKind.NUMERIC
        if prop.type == hv.ParamType.STRING:
            return ParamKind.STRING
        return ParamKind.INTEGER

    def _call(self, fn: Callable[[], T], what: str, request: bool = False) -> T:
        hv = self._binding
        try:
            return self._caller.call(fn)
        except DAQJobStopError:
            raise
        except Exception as exc:
            if hv is not None and isinstance(exc, hv.Error):
                code = getattr(getattr(exc, "code", None), "name", "")
                if request and code in REQUEST_ERRORS:
                    raise MessagePayloadError(f"{self.where} refused to {what}: {exc}") from exc
                raise DeviceError(f"{self.where}: cannot {what}: {exc}") from exc
            raise


def _close_quietly(device: Any) -> None:
    try:
        device.close()
    except Exception as exc:  # closing a device that failed: nothing more to do
        logger.debug("closing the CAEN HV device failed: %s", exc)
