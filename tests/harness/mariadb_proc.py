"""A real MariaDB server (Debian's ``mariadb-server``) on 127.0.0.1 and a random port.

``mariadb-install-db`` runs once per test session into a template data directory, which is
then started once to create the test users and database and stopped; every server is a copy
of that template with its own port and socket (starting one takes a fraction of a second), and
is stopped and removed at teardown. Runs as root (``--user=root``), as CI does.

Users: ``root`` @ 127.0.0.1 with password ``password`` (the original's example config), and
:data:`USER` with a password made per session (:attr:`MariaDBTemplate.password`), which tests
look for in logs and status to make sure it never shows. Both may use database :data:`DATABASE`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pymysql
import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.waiting import wait_for

DATABASE = "enrgdaq"
USER = "daq"
ROOT_PASSWORD = "password"
SERVER_OPTIONS = [
    "--no-defaults",
    "--user=root",
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-log-at-trx-commit=2",  # a test server: the OS keeps what a crash of it leaves
]


SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


def binary(name: str) -> str:
    """Debian puts mariadbd in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name, path=SEARCH_PATH) or name


def binaries_present() -> bool:
    return all(shutil.which(n, path=SEARCH_PATH) for n in ("mariadbd", "mariadb-install-db"))


class MariaDBTemplate:
    """A data directory with the system tables, the users and the database; copied per server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.data_dir = os.path.join(base, "data")
        self.password = "pw-" + secrets.token_hex(12)

    def build(self) -> MariaDBTemplate:
        log = os.path.join(self.base, "install.log")
        with open(log, "wb") as out:
            subprocess.run(
                [
                    binary("mariadb-install-db"),
                    *SERVER_OPTIONS,
                    f"--datadir={self.data_dir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
        server = MariaDBServer(self, os.path.join(self.base, "provision"), data_dir=self.data_dir)
        server.start()
        try:
            with server.admin() as conn, conn.cursor() as cursor:
                for sql in (
                    f"CREATE DATABASE `{DATABASE}`",
                    f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}'",
                    f"GRANT ALL ON `{DATABASE}`.* TO '{USER}'@'127.0.0.1'",
                    f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}'",
                ):
                    cursor.execute(sql)
        finally:
            server.close()
        return self


class MariaDBServer:
    """One server; ``stop()`` / ``start()`` again keep its data and port (a restart)."""

    def __init__(self, template: MariaDBTemplate, base: str, data_dir: str | None = None) -> None:
        self.template = template
        self.port = free_port()
        # Short: a unix socket path is limited to about 100 characters.
        self.sock_dir = tempfile.mkdtemp(prefix="edq-db-", dir="/tmp")
        self.socket = os.path.join(self.sock_dir, "sock")
        self.base = base
        os.makedirs(base, exist_ok=True)
        self.data_dir = data_dir or os.path.join(base, "data")
        if data_dir is None:
            shutil.copytree(template.data_dir, self.data_dir, symlinks=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def password(self) -> str:
        return self.template.password

    def start(self) -> None:
        argv = [
            binary("mariadbd"),
            *SERVER_OPTIONS,
            f"--datadir={self.data_dir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--pid-file={os.path.join(self.sock_dir, 'pid')}",
            f"--log-error={os.path.join(self.base, 'mariadb.err')}",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 30, f"mariadbd to answer (log: {self.base}/mariadb.err)", interval=0.05)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"mariadbd exited with {self.process.returncode}: see {self.base}")
        # A raw connect first: pymysql leaks its socket when the connect itself fails.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)
            except OSError:
                return False
        pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=5).close()
        return True

    def admin(self) -> pymysql.connections.Connection:
        """root over the socket, autocommit: for the test's own reads and setup."""
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)

    def connect(self) -> pymysql.connections.Connection:
        """The test user over TCP, on the test database (as the store connects)."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=self.password,
            database=DATABASE,
            autocommit=True,
        )

    def rows(self, sql: str) -> list[tuple]:
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"USE `{DATABASE}`")
            cursor.execute(sql)
            return list(cursor.fetchall())

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove everything (data directory, socket directory)."""
        try:
            self.stop()
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.sock_dir)
            if self.data_dir != self.template.data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


_TEMPLATE: MariaDBTemplate | None = None


def session_template(tmp_path_factory: pytest.TempPathFactory) -> MariaDBTemplate:
    """The template, built once per test process (every module's servers copy it)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        if not binaries_present():
            pytest.fail(
                "mariadbd / mariadb-install-db not found: the MySQL store's tests need Debian's "
                "mariadb-server (apt-get install mariadb-server; .ci/run installs it)",
                pytrace=False,
            )
        _TEMPLATE = MariaDBTemplate(str(tmp_path_factory.mktemp("mariadb-template"))).build()
    return _TEMPLATE


@contextlib.contextmanager
def running_server(tmp_path_factory: pytest.TempPathFactory, base: str) -> Iterator[MariaDBServer]:
    """A fresh server from the template for one test (a fixture in each test module uses it)."""
    server = MariaDBServer(session_template(tmp_path_factory), base)
    try:
        server.start()
        yield server
    finally:
        server.close()
