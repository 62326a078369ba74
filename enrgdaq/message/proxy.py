"""This node's XSUB/XPUB proxy: producers connect to XSUB, subscribers to XPUB.

It runs in a thread of the supervisor worker's main process. The loop is
libzmq's own (``zmq.proxy_steerable``), so it holds no GIL while it forwards.
"""

from __future__ import annotations

import logging
import os
import threading

import zmq

from enrgdaq.errors import DAQError

logger = logging.getLogger(__name__)

HWM = 100_000


def ipc_path(url: str) -> str | None:
    return url[len("ipc://") :] if url.startswith("ipc://") else None


class MessageProxy:
    """Forwards every message from the XSUB side to matching subscribers on the XPUB side."""

    def __init__(self, xsub_url: str, xpub_url: str) -> None:
        self.xsub_url = xsub_url
        self.xpub_url = xpub_url
        self._context = zmq.Context()
        self._control_url = f"inproc://proxy-control-{id(self)}"
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._stopped:
            raise DAQError("a stopped MessageProxy cannot be restarted; create a new one")
        self._thread = threading.Thread(target=self._run, name="enrgdaq-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(5.0):
            raise DAQError(f"message proxy did not start within 5 s ({self.xsub_url})")
        if self._error is not None:
            raise DAQError(f"message proxy could not bind: {self._error}") from self._error

    def _bind(self, socket: zmq.Socket, url: str) -> None:
        path = ipc_path(url)
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)  # left by a supervisor that did not stop cleanly
        socket.bind(url)

    def _run(self) -> None:
        xsub = self._context.socket(zmq.XSUB)
        xpub = self._context.socket(zmq.XPUB)
        control = self._context.socket(zmq.PAIR)
        try:
            for sock in (xsub, xpub):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, HWM)
                sock.setsockopt(zmq.RCVHWM, HWM)
            control.bind(self._control_url)
            self._bind(xsub, self.xsub_url)
            self._bind(xpub, self.xpub_url)
        except (zmq.ZMQError, OSError) as exc:
            self._error = exc
            self._ready.set()
            for sock in (xsub, xpub, control):
                sock.close(0)
            return
        self._ready.set()
        logger.info("message proxy: XSUB %s, XPUB %s", self.xsub_url, self.xpub_url)
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, control):
                sock.close(0)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None and self._thread.is_alive():
            ctl = self._context.socket(zmq.PAIR)
            ctl.connect(self._control_url)
            ctl.send(b"TERMINATE")
            self._thread.join(5.0)
            ctl.close(0)  # only now: closing at once can drop the unsent TERMINATE
        self._context.term()
        for url in (self.xsub_url, self.xpub_url):
            path = ipc_path(url)
            if path and os.path.exists(path):
                os.unlink(path)
        logger.info("message proxy stopped")
