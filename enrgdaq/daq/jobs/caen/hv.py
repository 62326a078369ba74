"""``DAQJobCAENHV``: reads a CAEN HV system's channels and sets their parameters on request.

Every ``poll_interval_seconds`` it reads each monitored parameter of each monitored channel
and sends:

- to ``store_config``: tag ``ch_param``, one row per channel: ``timestamp`` (unix ms),
  ``slot``, ``channel`` and every parameter (sorted by name);
- to ``timeseries_store_config``: one table per parameter, tag = the parameter's name, one row:
  ``timestamp`` and one column per channel, ``slot_S_channel_C``.

:class:`DAQJobMessageCAENHVSetChParam` messages (REST API, ``Operator.send_message``, another
job) are queued by the receive thread and applied by the job's loop between two readings,
so the device is never used by two threads at once; a refused request is logged and counted
(``failed``), the job goes on. A device that fails ends the run with a ``DeviceError`` after
the device is closed; the supervisor restarts the job with backoff. A stop is honoured within
0.1 s (within a second while a vendor call hangs).
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import timedelta
from typing import Any, ClassVar

import msgspec
import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.caen.hv_config import DAQJobCAENHVConfig
from enrgdaq.daq.jobs.caen.hv_driver import HVBoard, HVDriver
from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.errors import DAQJobStopError, MessagePayloadError

__all__ = ["DAQJobCAENHV", "DAQJobCAENHVConfig", "DAQJobMessageCAENHVSetChParam"]

LOOP_WAIT_SECONDS = 0.1


class DAQJobMessageCAENHVSetChParam(DAQJobMessage, kw_only=True):
    """Set a channel parameter: ``V0Set`` (V, fractional volts too), ``I0Set`` (µA), ``Pw``
    (0 off, 1 on), ``RUp``/``RDwn`` (V/s), ``Trip`` (s), or any other settable parameter."""

    slot: int
    channel_list: list[int]
    param_name: str
    value: int | float | str


class Plan(msgspec.Struct):
    """What one reading covers on one board."""

    slot: int
    channels: list[int]
    params: list[str]


class DAQJobCAENHV(DAQJob):
    config_type = DAQJobCAENHVConfig
    config: DAQJobCAENHVConfig
    allowed_message_in_types = [DAQJobMessageCAENHVSetChParam]
    restart_offset = timedelta(seconds=5)
    queue: ClassVar[str] = "caen"

    def __init__(self, config: DAQJobCAENHVConfig, **kwargs: Any) -> None:
        self._requests: queue.SimpleQueue[DAQJobMessageCAENHVSetChParam] = queue.SimpleQueue()
        self._wake = threading.Event()
        super().__init__(config, **kwargs)

    # -- device ---------------------------------------------------------------------
    def make_driver(self) -> HVDriver:
        """The simulated supply for ``link_type = "SIMULATED"``, the CAEN binding otherwise."""
        c = self.config
        if c.simulated:
            from enrgdaq.daq.jobs.caen.hv_sim import SimulatedHV

            sim = c.simulation
            return SimulatedHV(sim.boards, sim.channels, sim.load_mohm, sim.channel_defaults())
        from enrgdaq.daq.jobs.caen.hv_caen import CAENHVDriver

        return CAENHVDriver(
            c.system_type,
            c.link_type,
            c.connection_arg,
            c.username,
            c.password,
            should_stop=lambda: self._has_been_freed,
        )

    # -- messages (receive thread) ------------------------------------------------------
    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        if isinstance(message, DAQJobMessageCAENHVSetChParam):
            self._requests.put(message)
            self._wake.set()
        return True

    def request_stop(self) -> None:
        super().request_stop()
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        driver = self.make_driver()
        try:
            boards = driver.open()
            self._logger.info("connected: %d board(s) %s", len(boards), [b.model for b in boards])
            plans = self._plan(driver, boards)
            self._run(driver, plans)
        except DAQJobStopError:
            pass
        finally:
            driver.close()

    def _run(self, driver: HVDriver, plans: list[Plan]) -> None:
        interval = self.config.poll_interval_seconds
        due = time.monotonic()
        while not self._has_been_freed:
            self._wake.clear()
            self._apply_requests(driver)
            now = time.monotonic()
            if now >= due:
                self._poll(driver, plans)
                due = due + interval if due + interval > now else now + interval
            self._wake.wait(min(LOOP_WAIT_SECONDS, max(0.0, due - time.monotonic())))

    def _plan(self, driver: HVDriver, boards: list[HVBoard]) -> list[Plan]:
        c = self.config
        if c.store_config is None and c.timeseries_store_config is None:
            self._logger.warning("neither store_config nor timeseries_store_config is set: nothing is stored")
        selected = {s.slot: s.channels for s in c.channels_to_monitor or []}
        present = {b.slot for b in boards}
        for slot in sorted(set(selected) - present):
            self._logger.warning("channels_to_monitor: no board in slot %d", slot)
        plans = []
        for board in boards:
            if selected and board.slot not in selected:
                continue
            wanted = selected.get(board.slot)
            channels = list(range(board.n_channel)) if wanted is None else sorted(set(wanted))
            missing = [ch for ch in channels if ch >= board.n_channel]
            if missing:
                self._logger.warning(
                    "slot %d has %d channels: channels %s left out", board.slot, board.n_channel, missing
                )
            channels = [ch for ch in channels if ch < board.n_channel]
            if not channels:
                continue
            readable = driver.readable_params(board.slot, channels[0])
            params = (
                readable if c.params_to_monitor is None else [p for p in readable if p in c.params_to_monitor]
            )
            absent = sorted(set(c.params_to_monitor or []) - set(readable))
            if absent:
                self._logger.warning("slot %d cannot read %s: left out", board.slot, absent)
            plans.append(Plan(board.slot, channels, sorted(params)))
        return plans

    def _apply_requests(self, driver: HVDriver) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                driver.write(request.slot, list(request.channel_list), request.param_name, request.value)
            except MessagePayloadError as exc:
                self.counters.failed += 1
                self._logger.error("set %s refused: %s", request.param_name, exc)
                continue
            self._logger.info(
                "set %s = %r on slot %d channels %s",
                request.param_name,
                request.value,
                request.slot,
                list(request.channel_list),
            )

    def _poll(self, driver: HVDriver, plans: list[Plan]) -> None:
        timestamp = int(time.time() * 1000)
        rows: list[dict[str, Any]] = []
        for plan in plans:
            values = {p: driver.read(plan.slot, plan.channels, p) for p in plan.params}
            for i, channel in enumerate(plan.channels):
                rows.append({"slot": plan.slot, "channel": channel, **{p: v[i] for p, v in values.items()}})
        if not rows:
            return
        if self.config.store_config is not None:
            self._send(self.config.store_config, "ch_param", _ch_param_table(timestamp, rows))
        if self.config.timeseries_store_config is not None:
            for param, table in _per_param_tables(timestamp, rows).items():
                self._send(self.config.timeseries_store_config, param, table)

    def _send(self, store_config: DAQJobStoreConfig, tag: str, table: pa.Table) -> None:
        self._put_message_out(DAQJobMessageStorePyArrow(store_config=store_config, tag=tag, table=table))


def _ch_param_table(timestamp: int, rows: list[dict[str, Any]]) -> pa.Table:
    params = sorted({k for row in rows for k in row} - {"slot", "channel"})
    columns: dict[str, list[Any]] = {
        "timestamp": [timestamp] * len(rows),
        "slot": [r["slot"] for r in rows],
        "channel": [r["channel"] for r in rows],
    }
    for param in params:
        columns[param] = [r.get(param) for r in rows]
    return pa.table(columns)


def _per_param_tables(timestamp: int, rows: list[dict[str, Any]]) -> dict[str, pa.Table]:
    tables: dict[str, dict[str, list[Any]]] = {}
    for row in rows:
        name = f"slot_{row['slot']}_channel_{row['channel']}"
        for param, value in row.items():
            if param in ("slot", "channel"):
                continue
            tables.setdefault(param, {"timestamp": [timestamp]})[name] = [value]
    return {param: pa.table(columns) for param, columns in sorted(tables.items())}
