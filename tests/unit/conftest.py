"""Fixtures of the unit tests: a real message proxy on ipc:// sockets in a short temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import zmq

from enrgdaq.message.proxy import MessageProxy


@dataclass
class ProxyUrls:
    xsub_url: str
    """Producers connect here."""
    xpub_url: str
    """Subscribers connect here."""
    run_dir: str


@pytest.fixture
def proxy() -> Iterator[ProxyUrls]:
    """A started ``MessageProxy``; stopped afterwards, which must remove its socket files."""
    # Short: ipc socket paths are limited to about 100 characters.
    run_dir = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
    urls = ProxyUrls(f"ipc://{run_dir}/xsub", f"ipc://{run_dir}/xpub", run_dir)
    message_proxy = MessageProxy(urls.xsub_url, urls.xpub_url)
    try:
        message_proxy.start()
        yield urls
    finally:
        terminate_proxy_thread(message_proxy)
        message_proxy.stop()
        leftovers = os.listdir(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert leftovers == [], f"the stopped proxy left {leftovers} in {run_dir}"


def terminate_proxy_thread(message_proxy: MessageProxy) -> None:
    """End the proxy loop, keeping the control socket open until it has ended.

    ``MessageProxy.stop()`` closes its control socket right after sending
    TERMINATE, which loses the command about one time in four and then waits
    5 s (see test_proxy_stop.py). Doing this first keeps the suite fast; stop()
    still runs afterwards and does the rest (context, socket files).
    """
    thread = message_proxy._thread
    if thread is None or not thread.is_alive():
        return
    control = message_proxy._context.socket(zmq.PAIR)
    try:
        control.connect(message_proxy._control_url)
        control.send(b"TERMINATE")
        thread.join(5.0)
    finally:
        control.close(0)
