"""A throwaway, real PostgreSQL server for tests, started from Debian's ``postgresql`` package.

``running_postgres()`` runs ``initdb`` in a temporary directory, starts the server on a free
port on 127.0.0.1 (with durability switched off: the data is thrown away anyway), yields a
``PostgresServer`` and always stops the server and removes the directory afterwards.

``initdb`` refuses to run as root, so when the tests run as root the directory is handed to the
``postgres`` system user (created by the Debian package) and the server runs as that user.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

USER = "visitgate"
HOST = "127.0.0.1"
_SYSTEM_USER = "postgres"
_START_TIMEOUT_SECONDS = 30
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found or started."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        """SQLAlchemy URL for ``database`` on this server."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    async def create_database(self, name: str) -> None:
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, database="postgres"
        )
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()

    def create_database_sync(self, name: str) -> None:
        """``create_database`` for synchronous code (runs in its own, fresh event loop)."""
        asyncio.run(self.create_database(name))


def unique_database_name() -> str:
    """A database name no other test uses (what the `postgres_url` fixture creates)."""
    return f"test_{uuid.uuid4().hex}"


def find_postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` that has ``initdb`` and ``pg_ctl``."""
    candidates = []
    for bin_dir in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(bin_dir)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            version = path.parent.name
            key = tuple(int(part) for part in version.split(".") if part.isdigit())
            candidates.append((key, path))
    if not candidates:
        raise PostgresUnavailable(
            "PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin with initdb and "
            "pg_ctl). Run `./run setup` to install the Debian 'postgresql' package."
        )
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(server log is empty)"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server; stop it and delete its files on exit."""
    bin_dir = find_postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="visitgate-pg-"))
    data_dir = base / "data"
    log_file = base / "log"
    port = _free_port()

    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailable(
                f"running as root, but there is no '{_SYSTEM_USER}' system user to run "
                "PostgreSQL as. Run `./run setup` to install the Debian 'postgresql' package."
            ) from None
        _chown_tree(base, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", _SYSTEM_USER, "--"]

    def run(*args: str) -> None:
        command = [*prefix, *args]
        # cwd=base: the postgres user may not be allowed into the current directory.
        result = subprocess.run(command, cwd=base, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"command failed ({result.returncode}): {' '.join(command)}\n"
                f"--- output ---\n{result.stdout}{result.stderr}\n"
                f"--- server log ({log_file}) ---\n{_log_tail(log_file)}"
            )

    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        started = True  # from here on, always try to stop it (a failed start may leave it up)
        for attempt in range(_START_ATTEMPTS):
            server_options = (
                f"-p {port} -k {base} -c listen_addresses={HOST} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                run(
                    pg_ctl,
                    "-D",
                    str(data_dir),
                    "-l",
                    str(log_file),
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_SECONDS),
                    "-o",
                    server_options,
                    "start",
                )
                break
            except PostgresUnavailable:
                # Another process may have taken the "free" port between our check and the
                # server's bind: try another port; give up on any other failure.
                if attempt + 1 == _START_ATTEMPTS or "already in use" not in _log_tail(log_file):
                    raise
                port = _free_port()
        yield PostgresServer(host=HOST, port=port, user=USER)
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data_dir), "stop", "-m", "immediate", "-w"],
                cwd=base,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)
