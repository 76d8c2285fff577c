"""A throwaway, real Redis server for tests, started from Debian's ``redis-server`` package.

``running_redis()`` starts ``/usr/bin/redis-server`` in its own temporary directory on a free
port on 127.0.0.1, with persistence switched off (no RDB snapshots, no append-only file: the
data is thrown away anyway, and a snapshot fork would only cost time), waits until it answers
``PING``, yields a ``RedisServer`` and always stops the server and removes the directory.

Only a missing binary makes the tests skip (``RedisUnavailable.missing``); a server that is
installed but does not start is a failure, with the tail of its log in the message.

It speaks the few commands it needs (PING, FLUSHDB) over a plain socket, so the fixture does not
depend on the client library the code under test uses.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

REDIS_SERVER = Path("/usr/bin/redis-server")
HOST = "127.0.0.1"
_START_TIMEOUT_SECONDS = 10
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40


class RedisUnavailable(RuntimeError):
    """Redis could not be found (``missing``) or started."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    directory: Path

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def command(self, *args: str) -> bytes:
        """One command's raw reply line (enough for PING, FLUSHDB, CONFIG SET)."""
        return _command(self.host, self.port, *args)

    def flush(self, db: int = 0) -> None:
        """Empty database ``db``: what a test that asks for a fresh database gets."""
        reply = _command(self.host, self.port, "FLUSHDB", db=db)
        if reply != b"+OK":
            raise RedisUnavailable(f"FLUSHDB on db {db} answered {reply!r}")


def _command(host: str, port: int, *args: str, db: int = 0, timeout: float = 2.0) -> bytes:
    def bulk(text: str) -> bytes:
        data = text.encode()
        return b"$%d\r\n%s\r\n" % (len(data), data)

    commands = []
    if db:
        commands.append(b"*2\r\n" + bulk("SELECT") + bulk(str(db)))
    commands.append(b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(commands))
        buffer = b""
        while buffer.count(b"\r\n") < len(commands):
            chunk = sock.recv(4096)
            if not chunk:
                break
            buffer += chunk
    lines = buffer.split(b"\r\n")
    return lines[len(commands) - 1] if len(lines) >= len(commands) else b""


def redis_available() -> bool:
    return REDIS_SERVER.is_file()


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(server log is empty)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """Start a throwaway Redis server; stop it and delete its directory on exit."""
    if not redis_available():
        raise RedisUnavailable(
            f"{REDIS_SERVER} not found: install Debian's 'redis-server' package "
            "(`./run setup` does)",
            missing=True,
        )
    base = Path(tempfile.mkdtemp(prefix="visitgate-redis-"))
    log_file = base / "redis.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(_START_ATTEMPTS):
            port = free_port()
            options = {
                "port": str(port),
                "bind": HOST,
                # Nothing it might write lands outside its directory.
                "dir": str(base),
                "save": "",
                "appendonly": "no",
                "daemonize": "no",
                "logfile": str(log_file),
            }
            process = subprocess.Popen(
                [str(REDIS_SERVER), *(a for k, v in options.items() for a in (f"--{k}", v))],
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + _START_TIMEOUT_SECONDS
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if _command(HOST, port, "PING") == b"+PONG":
                        break
                except OSError:
                    pass
                time.sleep(0.02)
            else:
                _stop(process)
                # Another process may have taken the "free" port before the server bound it.
                if attempt + 1 < _START_ATTEMPTS and "in use" in _log_tail(log_file):
                    continue
                raise RedisUnavailable(
                    f"redis-server did not answer PING on port {port} within "
                    f"{_START_TIMEOUT_SECONDS} s (exit code {process.returncode})\n"
                    f"--- server log ({log_file}) ---\n{_log_tail(log_file)}"
                )
            yield RedisServer(host=HOST, port=port, directory=base)
            return
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)
