"""The ``visitgate`` command as an operator runs it: real subprocesses, a real
SQLite file, a real HTTP request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.net import free_port

# The console script the package installs, next to the interpreter running the tests.
VISITGATE = [str(Path(sys.executable).parent / "visitgate")]
ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, data_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VISITGATE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [*VISITGATE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def wait_for(url: str, deadline: float) -> tuple[int, bytes]:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read()
        except (urllib.error.URLError, ConnectionError) as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered: {last}")


def test_serve_starts_and_answers_healthz_with_the_database_checked(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*VISITGATE, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 30)
        assert status == 200
        assert json.loads(body) == {"status": "ok", "database": "ok"}
        assert (tmp_path / "visitgate.db").exists()
        _status, metrics = wait_for(f"http://127.0.0.1:{port}/metrics", time.monotonic() + 5)
        assert b"visitgate_database_up 1.0" in metrics
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output


def test_migrate_then_create_a_facility_and_an_officer(tmp_path: Path) -> None:
    migrated = run_cli("migrate", data_dir=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "revision" in migrated.stdout

    facility = run_cli(
        "create-facility", "--name", "丽水市看守所", "--kind", "detention_centre", data_dir=tmp_path
    )
    assert facility.returncode == 0, facility.stderr
    officer = run_cli(
        "create-officer",
        "--facility",
        "丽水市看守所",
        "--username",
        "zhiban01",
        "--display-name",
        "值班民警",
        "--roles",
        "值班岗,duty",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="a-long-password-9\n",
    )
    assert officer.returncode == 0, officer.stderr
    assert "zhiban01" in officer.stdout


def test_create_officer_refuses_a_weak_password_with_a_chinese_message(tmp_path: Path) -> None:
    run_cli(
        "create-facility", "--name", "测试拘留所", "--kind", "detention_house", data_dir=tmp_path
    )
    weak = run_cli(
        "create-officer",
        "--facility",
        "测试拘留所",
        "--username",
        "shouli",
        "--display-name",
        "受理",
        "--roles",
        "intake",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="short\n",
    )
    assert weak.returncode == 2
    assert "密码至少10个字符" in weak.stderr


def test_a_bad_setting_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = run_cli("serve", "--port", "99999", data_dir=tmp_path)
    assert bad.returncode == 2
    assert "--port" in bad.stderr and "VISITGATE_PORT" in bad.stderr


@pytest.mark.parametrize(
    "command", ["serve", "migrate", "demo", "create-officer", "create-facility"]
)
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    helped = run_cli(command, "--help", data_dir=tmp_path)
    assert helped.returncode == 0
    assert "--data-dir" in helped.stdout and "--database-url" in helped.stdout
