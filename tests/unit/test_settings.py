"""Settings: flag beats environment beats default; every bad value fails with a clear message."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from server.settings import IceServer, Settings, SettingsError, add_arguments


def build(args: dict[str, object] | None = None, environ: dict[str, str] | None = None) -> Settings:
    # Never fall through to the real os.environ in tests.
    return Settings.from_sources(args or {}, environ or {})


def parse_flags(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    return cert, key


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_are_local_sqlite_in_chinese_on_port_8080(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = build()
    data_dir = (tmp_path / "data").resolve()
    assert settings.data_dir == data_dir
    assert settings.data_dir.is_absolute()
    assert settings.database_url == f"sqlite+aiosqlite:///{data_dir}/visitgate.db"
    assert settings.redis_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.tls_cert is None and settings.tls_key is None
    assert settings.ice_servers == ()
    assert settings.workers == max(1, (os.cpu_count() or 1) - 1)
    assert settings.workers >= 1
    assert settings.language == "zh"
    assert settings.public_url is None
    assert settings.base_url() == "http://127.0.0.1:8080"


def test_default_database_lives_in_the_configured_data_dir(tmp_path: Path) -> None:
    settings = build(environ={"VISITGATE_DATA_DIR": str(tmp_path / "d")})
    assert settings.data_dir == tmp_path / "d"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/d/visitgate.db"


def test_settings_are_immutable() -> None:
    settings = build()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_every_flag_defaults_to_none_so_the_environment_can_apply() -> None:
    flags = parse_flags()
    assert set(flags) == {
        "ice_hosts",
        "sms_gateway_url",
        "data_dir",
        "database_url",
        "redis_url",
        "host",
        "port",
        "tls_cert",
        "tls_key",
        "stun",
        "turn",
        "turn_username",
        "turn_password",
        "workers",
        "face_interval",
        "presence_timeout",
        "lang",
        "public_url",
    }
    assert all(value is None for value in flags.values())


def test_face_check_timings_default_and_come_from_flags_or_environment() -> None:
    settings = build()
    assert (settings.face_interval, settings.presence_timeout) == (1.0, 20.0)
    settings = build(
        {"face_interval": "0.5"},
        environ={"VISITGATE_FACE_INTERVAL": "2", "VISITGATE_PRESENCE_TIMEOUT": "45"},
    )
    assert (settings.face_interval, settings.presence_timeout) == (0.5, 45.0)


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("VISITGATE_FACE_INTERVAL", "0"),
        ("VISITGATE_FACE_INTERVAL", "fast"),
        ("VISITGATE_PRESENCE_TIMEOUT", "1"),
        ("VISITGATE_PRESENCE_TIMEOUT", "9999"),
    ],
)
def test_face_check_timings_out_of_range_are_refused(env: str, value: str) -> None:
    with pytest.raises(SettingsError, match=env):
        build(environ={env: value})


# --- precedence -------------------------------------------------------------------------------


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    environ = {
        "VISITGATE_PORT": "9000",
        "VISITGATE_HOST": "0.0.0.0",
        "VISITGATE_LANG": "en",
        "VISITGATE_WORKERS": "3",
        "DATABASE_URL": "postgresql://env@db/env",
        "VISITGATE_DATA_DIR": str(tmp_path / "env"),
    }
    from_env = build(environ=environ)
    assert from_env.port == 9000
    assert from_env.host == "0.0.0.0"
    assert from_env.language == "en"
    assert from_env.workers == 3
    assert from_env.database_url == "postgresql+asyncpg://env@db/env"
    assert from_env.data_dir == tmp_path / "env"

    flags = parse_flags(
        "--port",
        "9100",
        "--lang",
        "zh",
        "--workers",
        "5",
        "--database-url",
        "sqlite:////tmp/flag.db",
        "--data-dir",
        str(tmp_path / "flag"),
    )
    from_flags = build(flags, environ)
    assert from_flags.port == 9100
    assert from_flags.language == "zh"
    assert from_flags.workers == 5
    assert from_flags.database_url == "sqlite+aiosqlite:////tmp/flag.db"
    assert from_flags.data_dir == tmp_path / "flag"
    # Not given as a flag: the environment still applies.
    assert from_flags.host == "0.0.0.0"


def test_empty_environment_variable_counts_as_not_set() -> None:
    assert build(environ={"VISITGATE_PORT": "", "VISITGATE_LANG": " "}).port == 8080


def test_environ_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITGATE_PORT", "8181")
    assert Settings.from_sources({}, None).port == 8181


# --- invalid values name the flag and the environment variable -------------------------------


@pytest.mark.parametrize(
    ("environ", "flag", "env_var"),
    [
        ({"VISITGATE_PORT": "http"}, "--port", "VISITGATE_PORT"),
        ({"VISITGATE_PORT": "0"}, "--port", "VISITGATE_PORT"),
        ({"VISITGATE_PORT": "65536"}, "--port", "VISITGATE_PORT"),
        ({"VISITGATE_WORKERS": "0"}, "--workers", "VISITGATE_WORKERS"),
        ({"VISITGATE_WORKERS": "many"}, "--workers", "VISITGATE_WORKERS"),
        ({"VISITGATE_LANG": "fr"}, "--lang", "VISITGATE_LANG"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "--database-url", "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "--database-url", "DATABASE_URL"),
        ({"VISITGATE_STUN": "turn:example.test"}, "--stun", "VISITGATE_STUN"),
        ({"VISITGATE_TURN": "stun:example.test"}, "--turn", "VISITGATE_TURN"),
        ({"VISITGATE_TURN": "turn:example.test"}, "--turn-username", "VISITGATE_TURN_USERNAME"),
        (
            {"VISITGATE_TURN": "turn:example.test", "VISITGATE_TURN_USERNAME": "u"},
            "--turn-password",
            "VISITGATE_TURN_PASSWORD",
        ),
        ({"VISITGATE_TLS_CERT": "/nonexistent/cert.pem"}, "--tls-key", "VISITGATE_TLS_KEY"),
        ({"VISITGATE_TLS_KEY": "/nonexistent/key.pem"}, "--tls-cert", "VISITGATE_TLS_CERT"),
        ({"REDIS_URL": "http://cache"}, "--redis-url", "REDIS_URL"),
        ({"VISITGATE_PUBLIC_URL": "visit.example.test"}, "--public-url", "VISITGATE_PUBLIC_URL"),
    ],
)
def test_invalid_value_raises_settings_error_naming_flag_and_variable(
    environ: dict[str, str], flag: str, env_var: str
) -> None:
    with pytest.raises(SettingsError) as excinfo:
        build(environ=environ)
    assert flag in str(excinfo.value)
    assert env_var in str(excinfo.value)


def test_invalid_flag_value_is_reported_too() -> None:
    with pytest.raises(SettingsError, match="--port"):
        build(parse_flags("--port", "99999"))


def test_missing_tls_files_are_reported(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, _key = tls_files
    with pytest.raises(SettingsError, match="--tls-key.*not found"):
        build(parse_flags("--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.pem")))


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# --- database URL normalisation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/visits", "postgresql+asyncpg://u:p@db:5432/visits"),
        ("postgres://u@db/visits", "postgresql+asyncpg://u@db/visits"),
        ("postgresql+asyncpg://u@db/visits", "postgresql+asyncpg://u@db/visits"),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert build(environ={"DATABASE_URL": given}).database_url == expected


# --- ICE servers ------------------------------------------------------------------------------


def test_no_ice_servers_unless_configured() -> None:
    assert build().ice_servers == ()


def test_stun_and_turn_urls_become_ice_servers() -> None:
    settings = build(
        environ={
            "VISITGATE_STUN": "stun:stun.example.test:3478, stuns:stun2.example.test",
            "VISITGATE_TURN": "turn:turn.example.test:3478?transport=udp,turns:turn.example.test",
            "VISITGATE_TURN_USERNAME": "gate",
            "VISITGATE_TURN_PASSWORD": "s3cret",
        }
    )
    assert settings.ice_servers == (
        IceServer(urls=("stun:stun.example.test:3478", "stuns:stun2.example.test")),
        IceServer(
            urls=("turn:turn.example.test:3478?transport=udp", "turns:turn.example.test"),
            username="gate",
            credential="s3cret",
        ),
    )


def test_turn_flags_override_turn_environment() -> None:
    flags = parse_flags(
        "--turn", "turn:flag.example.test", "--turn-username", "f", "--turn-password", "p"
    )
    settings = build(flags, {"VISITGATE_TURN": "turn:env.example.test"})
    assert settings.ice_servers == (
        IceServer(urls=("turn:flag.example.test",), username="f", credential="p"),
    )


def test_turn_password_is_not_shown_in_repr() -> None:
    server = IceServer(urls=("turn:t.example.test",), username="u", credential="s3cret")
    assert "s3cret" not in repr(server)


# --- base_url ---------------------------------------------------------------------------------


def test_base_url_is_plain_http_without_tls() -> None:
    settings = build(environ={"VISITGATE_HOST": "10.0.0.5", "VISITGATE_PORT": "8443"})
    assert settings.base_url() == "http://10.0.0.5:8443"


def test_base_url_is_https_with_tls(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    settings = build(parse_flags("--tls-cert", str(cert), "--tls-key", str(key)))
    assert settings.tls_cert == cert.resolve()
    assert settings.tls_key == key.resolve()
    assert settings.base_url() == "https://127.0.0.1:8080"


def test_base_url_brackets_ipv6_hosts() -> None:
    assert build(environ={"VISITGATE_HOST": "::1"}).base_url() == "http://[::1]:8080"


def test_public_url_wins_over_host_port_and_tls(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    settings = build(
        parse_flags("--tls-cert", str(cert), "--tls-key", str(key)),
        {"VISITGATE_PUBLIC_URL": "https://visits.example.test/gate/"},
    )
    assert settings.public_url == "https://visits.example.test/gate"
    assert settings.base_url() == "https://visits.example.test/gate"


def test_the_secret_key_and_sms_token_come_from_the_environment_and_stay_out_of_repr() -> None:
    key = "A" * 43 + "="
    settings = build(
        environ={"VISITGATE_SECRET_KEY": key, "VISITGATE_SMS_GATEWAY_TOKEN": "tok-123"},
        args={"sms_gateway_url": "http://127.0.0.1:9/sms"},
    )
    assert settings.secret_key == key and settings.sms_gateway_token == "tok-123"
    assert key not in repr(settings) and "tok-123" not in repr(settings)
    assert settings.sms_gateway_url == "http://127.0.0.1:9/sms"


@pytest.mark.parametrize("bad", ["short", "!" * 44])
def test_a_malformed_secret_key_is_refused_naming_its_variable(bad: str) -> None:
    with pytest.raises(SettingsError, match="VISITGATE_SECRET_KEY"):
        build(environ={"VISITGATE_SECRET_KEY": bad})


def test_ice_host_addresses_must_be_ip_addresses() -> None:
    assert build(args={"ice_hosts": "127.0.0.1, ::1"}).ice_host_addresses == ("127.0.0.1", "::1")
    assert build().ice_host_addresses == ()
    with pytest.raises(SettingsError, match="VISITGATE_ICE_HOSTS"):
        build(environ={"VISITGATE_ICE_HOSTS": "media.example.org"})
