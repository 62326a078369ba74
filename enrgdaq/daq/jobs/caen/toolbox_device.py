"""Register dumps of a CAEN digitizer: CAEN's ``caen-toolbox`` CLI, or a simulated digitizer.

The real one runs ``caen-toolbox <digitizer_type> dump <connection options...> <file>`` as an
argument list (no shell: nothing in the config is ever interpreted by one), writing to a file
in a private temporary directory made for that run and removed after it (the original used
the fixed ``/tmp/reg-dump.csv``, which any local user could pre-create or link). The dump is
CSV lines ``register,hexvalue``; lines starting with ``#`` are comments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from enrgdaq.errors import DAQJobStopError, DeviceError

TOOLBOX_EXECUTABLE = "caen-toolbox"
WAIT_SLICE_SECONDS = 0.05


class RegisterDumper(Protocol):
    def dump(self) -> dict[int, int]:
        """Every register the digitizer reports: ``{address: value}``."""
        ...


def register_address(text: str) -> int:
    """``"0x11a8"``, ``"0x11A8"`` or ``"11a8"`` -> 0x11A8 (hexadecimal, as CAEN writes them)."""
    return int(text.strip().lower().removeprefix("0x"), 16)


def parse_dump(lines: Iterable[str]) -> dict[int, int]:
    """``register,hexvalue`` lines (``#`` comments and blank lines skipped) as a dict."""
    registers = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip() for p in text.split(",")]
        try:
            registers[register_address(parts[0])] = register_address(parts[1])
        except (IndexError, ValueError) as exc:
            raise DeviceError(
                f"caen-toolbox dump line {number} is not 'register,hexvalue': {text[:80]!r}"
            ) from exc
    return registers


class ToolboxCLI:
    """The real digitizer, through the ``caen-toolbox`` executable found on PATH."""

    def __init__(
        self,
        digitizer_type: str,
        connection_args: list[str],
        timeout: float,
        should_stop: Callable[[], bool],
    ) -> None:
        self._type = digitizer_type
        self._connection = connection_args
        self._timeout = timeout
        self._should_stop = should_stop

    def dump(self) -> dict[int, int]:
        executable = shutil.which(TOOLBOX_EXECUTABLE)
        if executable is None:
            raise DeviceError(
                f"{TOOLBOX_EXECUTABLE} is not on PATH: install CAEN's caen-toolbox on this machine "
                "(or set simulate = true in the job's config)"
            )
        with tempfile.TemporaryDirectory(prefix="enrgdaq-toolbox-") as private:  # mode 0700
            target = os.path.join(private, "reg-dump.csv")
            argv = [executable, self._type, "dump", *self._connection, target]
            output = self._run(argv, private)
            if not os.path.exists(target):
                raise DeviceError(f"{TOOLBOX_EXECUTABLE} wrote no register dump: {output}")
            with open(target, encoding="utf-8", errors="replace") as f:
                return parse_dump(f)

    def _run(self, argv: list[str], cwd: str) -> str:
        log_path = os.path.join(cwd, "output.txt")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
            )
            deadline = time.monotonic() + self._timeout
            try:
                while True:
                    try:
                        code = process.wait(WAIT_SLICE_SECONDS)
                        break
                    except subprocess.TimeoutExpired:
                        if self._should_stop():
                            raise DAQJobStopError("stop requested during a register dump") from None
                        if time.monotonic() > deadline:
                            raise DeviceError(
                                f"{TOOLBOX_EXECUTABLE} did not finish within {self._timeout:g} s"
                            ) from None
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        with open(log_path, encoding="utf-8", errors="replace") as f:
            output = " ".join(f.read().split())[-300:]
        if code != 0:
            raise DeviceError(f"{TOOLBOX_EXECUTABLE} dump failed (exit {code}): {output or 'no output'}")
        return output


class SimulatedDigitizerRegisters:
    """Plausible register values: an ADC temperature register (``0x1nA8``) reads 35-50 °C and
    drifts slowly; any other register keeps a fixed value derived from its address."""

    def __init__(self, registers: list[int], seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._registers = registers
        self._temperatures = {r: float(self._rng.uniform(38, 44)) for r in registers if _is_temperature(r)}

    def dump(self) -> dict[int, int]:
        values = {}
        for register in self._registers:
            if register in self._temperatures:
                t = self._temperatures[register] + float(self._rng.normal(0, 0.3))
                self._temperatures[register] = t = min(50.0, max(35.0, t))
                values[register] = round(t)
            else:
                values[register] = zlib.crc32(register.to_bytes(4, "little")) & 0xFFFF
        return values


def _is_temperature(register: int) -> bool:
    return register & 0xF0FF == 0x10A8
