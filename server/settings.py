"""VisitGate's configuration: one immutable object, built once, passed in explicitly.

``Settings.from_sources()`` combines command-line flags and environment variables (a flag beats
its environment variable, which beats the default), validates everything up front and returns a
frozen ``Settings``. The rest of the project receives that object as an argument and never reads
``os.environ`` itself: this module is the only place that does, and only when no ``environ``
mapping is passed. That keeps configuration visible in function signatures, makes every
component testable with plain values, and makes a bad value fail at start-up with a message
naming both the flag and the environment variable, instead of deep inside a request.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

__all__ = [
    "IceServer",
    "Settings",
    "SettingsError",
    "add_arguments",
]

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LANGUAGE: Language = "zh"
DEFAULT_DATA_DIR = "./data"
DATABASE_FILE_NAME = "visitgate.db"

STUN_SCHEMES = ("stun:", "stuns:")
TURN_SCHEMES = ("turn:", "turns:")


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the flag and variable."""


@dataclass(frozen=True)
class IceServer:
    """One entry of WebRTC's ``iceServers`` list (a STUN or TURN server)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)  # keep secrets out of logs
    #: coturn ``static-auth-secret``: credentials are minted per participant (server/ice.py).
    shared_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Option:
    """A setting that can come from a flag or an environment variable."""

    key: str  # key in the argparse namespace
    env: str  # environment variable

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def describe(self) -> str:
        return f"{self.flag} / {self.env}"


_DATA_DIR = _Option("data_dir", "VISITGATE_DATA_DIR")
_DATABASE_URL = _Option("database_url", "DATABASE_URL")
_REDIS_URL = _Option("redis_url", "REDIS_URL")
_HOST = _Option("host", "VISITGATE_HOST")
_PORT = _Option("port", "VISITGATE_PORT")
_TLS_CERT = _Option("tls_cert", "VISITGATE_TLS_CERT")
_TLS_KEY = _Option("tls_key", "VISITGATE_TLS_KEY")
_STUN = _Option("stun", "VISITGATE_STUN")
_TURN = _Option("turn", "VISITGATE_TURN")
_TURN_USERNAME = _Option("turn_username", "VISITGATE_TURN_USERNAME")
_TURN_PASSWORD = _Option("turn_password", "VISITGATE_TURN_PASSWORD")
#: coturn's use-auth-secret: short-lived TURN credentials minted per participant.
_TURN_SECRET = _Option("turn_secret", "VISITGATE_TURN_SECRET")
_WORKERS = _Option("workers", "VISITGATE_WORKERS")
_FACE_INTERVAL = _Option("face_interval", "VISITGATE_FACE_INTERVAL")
_PRESENCE_TIMEOUT = _Option("presence_timeout", "VISITGATE_PRESENCE_TIMEOUT")
_LANG = _Option("lang", "VISITGATE_LANG")
_PUBLIC_URL = _Option("public_url", "VISITGATE_PUBLIC_URL")
_SMS_GATEWAY_URL = _Option("sms_gateway_url", "VISITGATE_SMS_GATEWAY_URL")
_ICE_HOSTS = _Option("ice_hosts", "VISITGATE_ICE_HOSTS")
# Secrets come from the environment only: a flag would show up in `ps`.
_SECRET_KEY = _Option("secret_key", "VISITGATE_SECRET_KEY")
_SMS_GATEWAY_TOKEN = _Option("sms_gateway_token", "VISITGATE_SMS_GATEWAY_TOKEN")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the settings flags to ``parser``.

    Every flag defaults to ``None`` so ``Settings.from_sources`` can tell "not given" apart from
    a value and fall back to the environment, then to the default.
    """
    group = parser.add_argument_group("settings (flags override environment variables)")

    def add(option: _Option, help_text: str, metavar: str | None = None) -> None:
        group.add_argument(
            option.flag,
            dest=option.key,
            default=None,
            metavar=metavar,
            help=f"{help_text} [env: {option.env}]",
        )

    add(
        _DATA_DIR,
        f"directory for the database and recordings (default: {DEFAULT_DATA_DIR})",
        metavar="DIR",
    )
    add(
        _DATABASE_URL,
        "sqlite:///PATH or postgresql://USER@HOST/DB "
        f"(default: sqlite in the data directory, {DATABASE_FILE_NAME})",
        metavar="URL",
    )
    add(
        _REDIS_URL,
        "redis://HOST:PORT/DB for state shared between processes (default: none)",
        metavar="URL",
    )
    add(_HOST, f"address to listen on (default: {DEFAULT_HOST})")
    add(_PORT, f"port to listen on (default: {DEFAULT_PORT})")
    add(_TLS_CERT, "TLS certificate file (PEM); needs --tls-key", metavar="FILE")
    add(_TLS_KEY, "TLS private key file (PEM); needs --tls-cert", metavar="FILE")
    add(_STUN, "comma-separated STUN URLs (stun:HOST:PORT)", metavar="URLS")
    add(
        _TURN,
        "comma-separated TURN URLs (turn:HOST:PORT or turns:...); needs username and password",
        metavar="URLS",
    )
    add(_TURN_USERNAME, "TURN username", metavar="NAME")
    add(_TURN_PASSWORD, "TURN password", metavar="PASSWORD")
    add(
        _WORKERS,
        "number of recognition worker processes (default: CPU count - 1, at least 1)",
        metavar="N",
    )
    add(
        _FACE_INTERVAL,
        "seconds between face-check samples of each side during a live visit (default: 1; "
        "faster by itself while a new face is being judged and during the identity gate)",
        metavar="SECONDS",
    )
    add(
        _PRESENCE_TIMEOUT,
        "seconds an approved person may be out of view (or not match) before the officer "
        "is told (default: 20)",
        metavar="SECONDS",
    )
    add(_LANG, "interface language: zh or en (default: zh)", metavar="{zh,en}")
    add(
        _PUBLIC_URL,
        "base URL used in printed and sent links (default: derived from host, port and TLS)",
        metavar="URL",
    )
    add(
        _ICE_HOSTS,
        "comma-separated IP addresses the media server offers as its ICE host candidates "
        "(default: every address of this machine except loopback; tests use 127.0.0.1)",
        metavar="IPS",
    )
    add(
        _SMS_GATEWAY_URL,
        "HTTP SMS gateway that notices are POSTed to (default: none, notices go to the log); "
        f"its bearer token comes from {_SMS_GATEWAY_TOKEN.env}",
        metavar="URL",
    )


class _Sources:
    """Looks a setting up in the flags first, then in the environment."""

    def __init__(self, args: Mapping[str, object], environ: Mapping[str, str]) -> None:
        self._args = args
        self._environ = environ

    def raw(self, option: _Option) -> object | None:
        value = self._args.get(option.key)
        if value is not None:
            return value
        env_value = self._environ.get(option.env)
        if env_value is None or env_value.strip() == "":
            return None
        return env_value

    def text(self, option: _Option) -> str | None:
        value = self.raw(option)
        if value is None:
            return None
        text = str(value).strip()
        return text or None


def _parse_int(option: _Option, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"{option.describe()}: expected a whole number, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise SettingsError(
                f"{option.describe()}: expected a whole number, got {value!r}"
            ) from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{option.describe()}: must be {bounds}, got {number}")
    return number


def normalise_database_url(url: str, option: _Option = _DATABASE_URL) -> str:
    """Return the SQLAlchemy async URL for ``url``; only SQLite and PostgreSQL are supported.

    ``sqlite:///x`` becomes ``sqlite+aiosqlite:///x``; ``postgresql://`` and ``postgres://``
    become ``postgresql+asyncpg://``. Explicit ``+aiosqlite`` / ``+asyncpg`` are kept.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(
            f"{option.describe()}: {url!r} is not a database URL; "
            "expected sqlite:///PATH or postgresql://USER@HOST/DATABASE"
        )
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise SettingsError(
        f"{option.describe()}: unsupported database URL scheme {scheme!r}; "
        "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
    )


def _split_urls(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple):
        parts = [piece for item in value for piece in str(item).split(",")]
    else:
        parts = str(value).split(",")
    return tuple(part.strip() for part in parts if part.strip())


def _check_schemes(option: _Option, urls: tuple[str, ...], schemes: tuple[str, ...]) -> None:
    for url in urls:
        if not url.lower().startswith(schemes):
            expected = " or ".join(schemes)
            raise SettingsError(f"{option.describe()}: {url!r} must start with {expected}")


def _parse_seconds(option: _Option, value: object, minimum: float, maximum: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"{option.describe()}: expected seconds, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise SettingsError(
            f"{option.describe()}: must be between {minimum} and {maximum}, got {number}"
        )
    return number


def _default_workers() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a VisitGate process. Build with ``from_sources``."""

    data_dir: Path
    database_url: str
    redis_url: str | None
    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    ice_servers: tuple[IceServer, ...]
    workers: int
    language: Language
    public_url: str | None
    #: Fernet key (urlsafe base64, 32 bytes); None means <data_dir>/secret.key.
    secret_key: str | None = field(default=None, repr=False)
    sms_gateway_url: str | None = None
    #: The media server's own ICE host addresses; empty = aioice's scan of the interfaces.
    ice_host_addresses: tuple[str, ...] = ()
    sms_gateway_token: str | None = field(default=None, repr=False)
    #: Seconds between face-check samples of a side during a live visit.
    face_interval: float = 1.0
    #: Seconds an approved person may be out of view before the officer is told.
    presence_timeout: float = 20.0

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    def base_url(self) -> str:
        """Base URL for links shown or sent to people: ``public_url`` or one from host/port."""
        if self.public_url is not None:
            return self.public_url
        scheme = "https" if self.tls_enabled else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @classmethod
    def from_sources(
        cls,
        args: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from flags (``vars(namespace)``) and the environment.

        For each setting a flag beats its environment variable, which beats the default.
        ``environ=None`` means ``os.environ``. Raises ``SettingsError`` on any invalid value.
        """
        sources = _Sources(args or {}, os.environ if environ is None else environ)

        data_dir = Path(sources.text(_DATA_DIR) or DEFAULT_DATA_DIR).expanduser().resolve()

        database_text = sources.text(_DATABASE_URL)
        if database_text is None:
            database_url = f"sqlite+aiosqlite:///{data_dir / DATABASE_FILE_NAME}"
        else:
            database_url = normalise_database_url(database_text)

        redis_url = sources.text(_REDIS_URL)
        if redis_url is not None and not redis_url.lower().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise SettingsError(
                f"{_REDIS_URL.describe()}: {redis_url!r} must start with redis://, rediss:// "
                "or unix://"
            )

        host = sources.text(_HOST) or DEFAULT_HOST

        port_raw = sources.raw(_PORT)
        port = DEFAULT_PORT if port_raw is None else _parse_int(_PORT, port_raw, 1, 65535)

        tls_cert_text = sources.text(_TLS_CERT)
        tls_key_text = sources.text(_TLS_KEY)
        if (tls_cert_text is None) != (tls_key_text is None):
            raise SettingsError(
                f"TLS needs both {_TLS_CERT.describe()} and {_TLS_KEY.describe()}, or neither"
            )
        tls_cert = cls._existing_file(_TLS_CERT, tls_cert_text)
        tls_key = cls._existing_file(_TLS_KEY, tls_key_text)

        ice_servers = cls._ice_servers(sources)

        workers_raw = sources.raw(_WORKERS)
        workers = (
            _default_workers() if workers_raw is None else _parse_int(_WORKERS, workers_raw, 1)
        )

        lang_text = (sources.text(_LANG) or DEFAULT_LANGUAGE).lower()
        if lang_text not in LANGUAGES:
            raise SettingsError(
                f"{_LANG.describe()}: must be one of {', '.join(LANGUAGES)}, got {lang_text!r}"
            )
        language = cast(Language, lang_text)

        public_url = sources.text(_PUBLIC_URL)
        if public_url is not None:
            if not public_url.lower().startswith(("http://", "https://")):
                raise SettingsError(
                    f"{_PUBLIC_URL.describe()}: {public_url!r} must start with http:// or https://"
                )
            public_url = public_url.rstrip("/")

        sms_gateway_url = sources.text(_SMS_GATEWAY_URL)
        if sms_gateway_url is not None and not sms_gateway_url.lower().startswith(
            ("http://", "https://")
        ):
            raise SettingsError(
                f"{_SMS_GATEWAY_URL.describe()}: {sms_gateway_url!r} must start with http:// "
                "or https://"
            )
        secret_key = sources.text(_SECRET_KEY)
        if secret_key is not None:
            try:
                if len(base64.urlsafe_b64decode(secret_key.encode("ascii"))) != 32:
                    raise ValueError
            except (ValueError, UnicodeEncodeError):
                raise SettingsError(
                    f"{_SECRET_KEY.env}: must be 32 bytes in urlsafe base64 (a Fernet key), e.g. "
                    'python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
                ) from None

        ice_raw = sources.raw(_ICE_HOSTS)
        ice_hosts = () if ice_raw is None else _split_urls(ice_raw)
        for address in ice_hosts:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise SettingsError(
                    f"{_ICE_HOSTS.describe()}: {address!r} is not an IP address"
                ) from None

        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=redis_url,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            ice_servers=ice_servers,
            workers=workers,
            language=language,
            public_url=public_url,
            secret_key=secret_key,
            sms_gateway_url=sms_gateway_url,
            ice_host_addresses=ice_hosts,
            sms_gateway_token=sources.text(_SMS_GATEWAY_TOKEN),
            face_interval=_parse_seconds(
                _FACE_INTERVAL, sources.raw(_FACE_INTERVAL) or 1.0, 0.1, 10.0
            ),
            presence_timeout=_parse_seconds(
                _PRESENCE_TIMEOUT, sources.raw(_PRESENCE_TIMEOUT) or 20.0, 2.0, 600.0
            ),
        )

    @staticmethod
    def _existing_file(option: _Option, text: str | None) -> Path | None:
        if text is None:
            return None
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise SettingsError(f"{option.describe()}: file not found: {path}")
        return path

    @staticmethod
    def _ice_servers(sources: _Sources) -> tuple[IceServer, ...]:
        servers: list[IceServer] = []

        stun_raw = sources.raw(_STUN)
        stun_urls = () if stun_raw is None else _split_urls(stun_raw)
        _check_schemes(_STUN, stun_urls, STUN_SCHEMES)
        if stun_urls:
            servers.append(IceServer(urls=stun_urls))

        turn_raw = sources.raw(_TURN)
        turn_urls = () if turn_raw is None else _split_urls(turn_raw)
        _check_schemes(_TURN, turn_urls, TURN_SCHEMES)
        username = sources.text(_TURN_USERNAME)
        password = sources.text(_TURN_PASSWORD)
        secret = sources.text(_TURN_SECRET)
        if turn_urls and secret is not None:
            servers.append(IceServer(urls=turn_urls, shared_secret=secret))
        elif turn_urls:
            if username is None or password is None:
                raise SettingsError(
                    f"TURN servers need credentials: set {_TURN_SECRET.env} (coturn "
                    f"use-auth-secret, preferred) or {_TURN_USERNAME.describe()} and "
                    f"{_TURN_PASSWORD.describe()} (given with {_TURN.describe()})"
                )
            servers.append(IceServer(urls=turn_urls, username=username, credential=password))

        return tuple(servers)
