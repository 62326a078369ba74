"""CURVE keys and authentication for sockets that leave the machine (the data bridges).

A node's key pair is two files made by ``enrgdaq keys generate``: ``<name>.key`` (the public
key, safe to copy to other nodes) and ``<name>.key_secret`` (readable by its owner only). A
server socket (one that binds) encrypts with its secret key and lets in only clients whose
public key files are in an allow-list directory; a refused key is logged (once per key) and
counted. A client (one that connects) needs its own key pair and the server's public key.
Without keys a bridge binds the loopback interface only (:func:`loopback_only`).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from enrgdaq.errors import ConfigError

logger = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def generate(key_dir: str, name: str) -> tuple[str, str]:
    """Make ``<name>.key`` and ``<name>.key_secret`` in ``key_dir``; never over existing files."""
    os.makedirs(key_dir, mode=0o700, exist_ok=True)
    public, secret = (os.path.join(key_dir, name + s) for s in (PUBLIC_SUFFIX, SECRET_SUFFIX))
    for path in (public, secret):
        if os.path.exists(path):
            raise ConfigError(f"{path} exists already: keys are never overwritten (remove it first)")
    made_public, made_secret = zmq.auth.create_certificates(key_dir, name)
    os.chmod(made_secret, 0o600)
    return made_public, made_secret


def public_key(path: str) -> bytes:
    """The public key of a ``.key`` or ``.key_secret`` file (z85)."""
    return _load(path)[0]


def key_pair(secret_file: str) -> tuple[bytes, bytes]:
    """(public, secret) of a ``.key_secret`` file; a ConfigError naming the file otherwise."""
    public, secret = _load(secret_file)
    if secret is None:
        raise ConfigError(f"{secret_file} holds no secret key (give the .key_secret file, not the .key)")
    return public, secret


def _load(path: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CURVE key file {path}: {exc}") from exc


def allowed_keys(key_dir: str) -> set[bytes]:
    """The public keys of every ``*.key`` file in ``key_dir`` (the clients a server lets in)."""
    if not os.path.isdir(key_dir):
        raise ConfigError(f"authorized_keys_dir {key_dir} is not a directory")
    return {public_key(path) for path in sorted(glob.glob(os.path.join(key_dir, "*" + PUBLIC_SUFFIX)))}


@dataclass
class AllowList:
    """The ZAP callback: a client key is let in when it is in the list; refusals are counted and
    logged once per key (a client that retries does not flood the log)."""

    keys: set[bytes]
    owner: str = "bridge"
    refused: int = 0
    _said: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, domain: str, client_key: bytes) -> bool:
        if client_key in self.keys:
            return True
        with self._lock:
            self.refused += 1
            if client_key not in self._said:
                self._said.add(client_key)
                logger.error(
                    "[%s] refused a connection with a CURVE key not in the allow-list: %s",
                    self.owner,
                    client_key.decode(errors="replace"),
                )
        return False


class CurveServer:
    """Authentication for the binding sockets of one context: start once, then :meth:`secure`."""

    def __init__(self, context: zmq.Context, secret_file: str, authorized_keys_dir: str, owner: str) -> None:
        self.public, self._secret = key_pair(secret_file)
        self.allow = AllowList(allowed_keys(authorized_keys_dir), owner)
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=self.allow)

    def secure(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def stop(self) -> None:
        self._auth.stop()


def secure_client(socket: zmq.Socket, secret_file: str, server_public_file: str) -> None:
    """Make ``socket`` a CURVE client of the server whose public key is in ``server_public_file``."""
    public, secret = key_pair(secret_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = public_key(server_public_file)


def loopback_only(url: str) -> str:
    """A ``tcp://`` URL bound to the loopback interface, whatever host it named (a bridge without
    keys must not listen beyond the machine)."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or (parts.hostname or "") in LOOPBACK_NAMES:
        return url
    return f"tcp://127.0.0.1:{parts.port}"
