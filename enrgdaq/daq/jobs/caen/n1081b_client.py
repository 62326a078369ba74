"""The N1081B's own protocol: JSON requests and replies over a websocket (``enrgdaq[caen]``).

The unit serves a websocket at ``ws://<host>:<port>/``. Each request is one text frame
``{"command": ..., "callback": ..., ...}`` answered by one JSON text frame:

- ``{"command": "login", "callback": "login", "pwd": PASSWORD}`` -> ``{"Result": true|false, ...}``
- ``{"command": "get_function_results", "callback": "get_results", "params": {"section": N}}``
  (N = 0..3 for SEC_A..SEC_D) -> ``{"data": {"counters": [{"lemo": 0, "value": 12}, ...]}, ...}``

``websocket-client`` is imported on ``connect`` only; without it the job ends its run with
:class:`~enrgdaq.errors.DeviceLibraryMissingError`. The TCP connect and every reply are
waited for in short slices, so a stop is honoured within a fraction of a second even when the
unit does not answer; the whole request still gets ``timeout`` seconds.
"""

from __future__ import annotations

import errno
import json
import select
import socket
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from enrgdaq.daq.jobs.caen.n1081b_config import SECTIONS
from enrgdaq.errors import DAQJobStopError, DeviceError, DeviceLibraryMissingError

WAIT_SLICE_SECONDS = 0.1
HANDSHAKE_TIMEOUT_SECONDS = 0.9
"""The websocket handshake cannot be waited for in slices: a unit that accepted the TCP
connection answers it at once, so it gets at most this long (keeps stops under a second)."""


def load_websocket() -> ModuleType:
    try:
        import websocket
    except ImportError as exc:
        raise DeviceLibraryMissingError("DAQJobN1081B (a real N1081B)", "caen", exc) from exc
    return websocket


class N1081BClient:
    """:class:`~enrgdaq.daq.jobs.caen.n1081b_device.N1081BDriver` of a real unit."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        timeout: float,
        should_stop: Callable[[], bool],
        websocket_module: ModuleType | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._password = password
        self._timeout = timeout
        self._should_stop = should_stop
        self._ws_module = websocket_module
        self._conn: Any = None

    @property
    def where(self) -> str:
        return f"N1081B at {self.host}:{self.port}"

    def connect(self) -> None:
        ws = self._ws_module = self._ws_module or load_websocket()
        sock = self._tcp_connect()
        sock.settimeout(min(self._timeout, HANDSHAKE_TIMEOUT_SECONDS))
        try:
            self._conn = ws.create_connection(f"ws://{self.host}:{self.port}/", socket=sock)
        except (ws.WebSocketException, OSError) as exc:
            sock.close()
            raise DeviceError(f"{self.where}: websocket handshake failed: {exc}") from exc
        self._conn.settimeout(WAIT_SLICE_SECONDS)
        reply = self._request({"command": "login", "callback": "login", "pwd": self._password})
        if not reply.get("Result"):
            raise DeviceError(f"{self.where} refused the login: check the password in the job's config")

    def results(self, section: str) -> dict[str, Any]:
        return self._request(
            {
                "command": "get_function_results",
                "callback": "get_results",
                "params": {"section": SECTIONS.index(section)},
            }
        )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close(timeout=0.2)
            except Exception:  # the connection is going anyway
                conn.shutdown()

    # -- helpers ------------------------------------------------------------------
    def _tcp_connect(self) -> socket.socket:
        deadline = time.monotonic() + self._timeout
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DeviceError(f"{self.where}: cannot resolve the host: {exc}") from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        try:
            while code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                if self._should_stop():
                    raise DAQJobStopError("stop requested while connecting")
                if time.monotonic() > deadline:
                    raise DeviceError(f"{self.where}: no connection within {self._timeout:g} s")
                _, writable, _ = select.select([], [sock], [], WAIT_SLICE_SECONDS)
                if writable:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code != 0:
                raise DeviceError(f"{self.where}: cannot connect: {errno.errorcode.get(code, code)}")
        except BaseException:
            sock.close()
            raise
        sock.setblocking(True)
        return sock

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        ws, conn = self._ws_module, self._conn
        assert ws is not None and conn is not None
        command = payload["command"]
        deadline = time.monotonic() + self._timeout
        try:
            conn.send(json.dumps(payload))
            while True:
                try:
                    text = conn.recv()
                    break
                except ws.WebSocketTimeoutException:
                    if self._should_stop():
                        raise DAQJobStopError("stop requested while waiting for the N1081B") from None
                    if time.monotonic() > deadline:
                        raise DeviceError(
                            f"{self.where}: no answer to {command} within {self._timeout:g} s"
                        ) from None
        except (ws.WebSocketException, OSError) as exc:
            raise DeviceError(f"{self.where}: {command} failed: {exc}") from exc
        try:
            reply = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise DeviceError(
                f"{self.where}: the answer to {command} is not JSON: {str(text)[:80]!r}"
            ) from exc
        if not isinstance(reply, dict):
            raise DeviceError(f"{self.where}: the answer to {command} is not a JSON object")
        return reply
