"""``DAQJobCAENToolbox``: chosen registers of a CAEN digitizer, read with CAEN's ``caen-toolbox``.

Every ``poll_interval_seconds`` (the original's 1 s) it dumps the digitizer's registers and
sends a one-row table: ``timestamp`` (unix ms) and one column per ``[[register_labels]]``
entry, named by its label, holding the register's value. ``simulate = true`` reads a
simulated digitizer instead. The CLI runs as an argument list, never through a shell; a
failed or missing CLI ends the run with a ``DeviceError`` (restarted with backoff).
"""

from __future__ import annotations

import shlex
import time
from typing import Annotated, Any, ClassVar

import msgspec
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.caen.toolbox_device import (
    RegisterDumper,
    SimulatedDigitizerRegisters,
    ToolboxCLI,
    register_address,
)
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, StorableDAQJobConfig
from enrgdaq.errors import ConfigValueError, DAQJobStopError, DeviceError

__all__ = ["DAQJobCAENToolbox", "DAQJobCAENToolboxConfig", "RegisterLabel"]

DAQ_JOB_CAEN_TOOLBOX_SLEEP_INTERVAL = 1.0
LOOP_WAIT_SECONDS = 0.1


class RegisterLabel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A register (hexadecimal address, ``"0x11a8"``) and the column name its value goes to."""

    register: str
    label: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")]


class DAQJobCAENToolboxConfig(StorableDAQJobConfig, kw_only=True):
    """Attributes:
    digitizer_type: caen-toolbox's digitizer family, e.g. ``dig1``, ``dig2``.
    connection_string: caen-toolbox's connection options, e.g. ``-c OPTICAL_LINK -l 0``;
        split into arguments as a shell would split words, but never run by a shell.
    register_labels: ``[[register_labels]]`` entries ``register``, ``label``.
    simulate: read a simulated digitizer instead (*new*).
    poll_interval_seconds: seconds between dumps (*new*; the original's 1 s).
    timeout_seconds: how long one dump may take (*new*).
    """

    digitizer_type: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    connection_string: str
    register_labels: list[RegisterLabel]
    simulate: bool = False
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = (
        DAQ_JOB_CAEN_TOOLBOX_SLEEP_INTERVAL
    )
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0

    def __post_init__(self) -> None:
        try:
            shlex.split(self.connection_string)
        except ValueError as exc:
            raise ConfigValueError(f"connection_string cannot be split into arguments: {exc}") from exc
        if not self.register_labels:
            raise ConfigValueError("register_labels is empty: add a [[register_labels]] entry")
        labels = [r.label for r in self.register_labels]
        for entry in self.register_labels:
            try:
                register_address(entry.register)
            except ValueError:
                raise ConfigValueError(
                    f"register_labels: register '{entry.register}' is not a hexadecimal address like 0x11a8"
                ) from None
            if entry.label == "timestamp" or labels.count(entry.label) > 1:
                raise ConfigValueError(
                    f"register_labels: label '{entry.label}' is used twice (or is 'timestamp')"
                )

    @property
    def connection_args(self) -> list[str]:
        return shlex.split(self.connection_string)


class DAQJobCAENToolbox(DAQJob):
    config_type = DAQJobCAENToolboxConfig
    config: DAQJobCAENToolboxConfig
    queue: ClassVar[str] = "caen"

    def make_dumper(self) -> RegisterDumper:
        c = self.config
        if c.simulate:
            return SimulatedDigitizerRegisters([register_address(r.register) for r in c.register_labels])
        return ToolboxCLI(
            c.digitizer_type, c.connection_args, c.timeout_seconds, should_stop=lambda: self._has_been_freed
        )

    def start(self) -> None:
        dumper = self.make_dumper()
        due = time.monotonic()
        try:
            while not self._has_been_freed:
                now = time.monotonic()
                if now >= due:
                    self._send(dumper.dump())
                    interval = self.config.poll_interval_seconds
                    due = due + interval if due + interval > now else now + interval
                time.sleep(min(LOOP_WAIT_SECONDS, max(0.0, due - time.monotonic())))
        except DAQJobStopError:
            pass

    def _send(self, registers: dict[int, int]) -> None:
        columns: dict[str, Any] = {"timestamp": [int(time.time() * 1000)]}
        for entry in self.config.register_labels:
            value = registers.get(register_address(entry.register))
            if value is None:
                raise DeviceError(
                    f"the register dump has no register {entry.register} (label {entry.label}): "
                    "check register_labels against this digitizer"
                )
            columns[entry.label] = [value]
        self._put_message_out(
            DAQJobMessageStorePyArrow(store_config=self.config.store_config, table=pa.table(columns))
        )
