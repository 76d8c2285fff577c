"""Officer sign-in: sessions, roles, CSRF and login throttling for the console
and the JSON API.

The session lives in an encrypted cookie (``visitgate_session``) holding only
the officer's id, the CSRF token and two instants from the app clock (login,
last seen); every request reloads the officer, so a deactivated account is
logged out at once. Unsafe requests under ``/console/`` and ``/api/v1/`` must
carry the session's CSRF token; the two login endpoints, which have no session
yet, are guarded by a short-lived pre-login cookie (form) or by requiring a
JSON body (API), which a cross-site form cannot send. This module never makes
a domain decision: who may do what is still checked by the service.
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from yarl import URL

from sessions.clock import Clock
from sessions.errors import CredentialRejected, DomainError, Language
from sessions.officers import Officer, Role
from sessions.queries import ConsoleQueries

from .i18n import pick_language
from .keys import CLOCK, QUERIES, SERVICE, SETTINGS
from .pages import _render
from .secrets import load_or_create_key

__all__ = [
    "LoginThrottle",
    "LoginThrottled",
    "csrf_token",
    "current_officer",
    "log_in",
    "log_out",
    "require_roles",
    "setup",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "visitgate_session"
LOGIN_COOKIE = "visitgate_login"
SESSION_MAX_AGE = timedelta(hours=8)
IDLE_TIMEOUT = timedelta(minutes=30)
#: How long a login form stays valid (its pre-login cookie's lifetime).
LOGIN_FORM_TTL = timedelta(minutes=30)
#: The idle timer is written back at most this often (each write re-sends the cookie).
_SEEN_RESOLUTION = timedelta(seconds=30)

LOGIN_PATH = "/console/login"
LOGOUT_PATH = "/console/logout"
API_LOGIN_PATH = "/api/v1/session"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_GUARDED = ("/console/", "/api/v1/")
MAX_USERNAME = 64
MAX_PASSWORD = 1024

# Session fields.
_OFFICER = "officer_id"
_CSRF = "csrf"
_LOGIN_AT = "login_at"
_SEEN_AT = "seen_at"
FLASH = "flash"

#: The request-scoped cache of ``current_officer``.
_LOADED: web.RequestKey[Officer | None] = web.RequestKey("visitgate_officer_loaded")

LOGIN_FERNET = web.AppKey("login_form_fernet", Fernet)

CSRF_REJECTED_ZH = "请求来源无法验证，请刷新页面后重试"
CSRF_REJECTED_EN = "The request could not be verified; reload the page and try again"
LOGIN_EXPIRED_ZH = "登录页面已过期，请重新输入"
LOGIN_EXPIRED_EN = "The sign-in page expired; please try again"


class LoginThrottled(DomainError):
    status = 429

    def __init__(self) -> None:
        super().__init__(
            "login_throttled",
            "登录失败次数过多，请15分钟后再试",
            "Too many failed sign-ins; try again in 15 minutes",
        )


class LoginThrottle:
    """Counts failed sign-ins per username and per client address in a sliding
    window; past the limit further attempts are refused without checking the
    password (so argon2 cannot be used to burn the server's CPU either).

    Memory is bounded: each key keeps at most ``limit`` instants, and past
    ``max_keys`` keys the least recently failed ones are dropped first."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_user: int = 5,
        per_address: int = 20,
        window: timedelta = timedelta(minutes=15),
        max_keys: int = 10_000,
    ) -> None:
        self._clock = clock
        self._limits = {"user": per_user, "addr": per_address}
        self._window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    @staticmethod
    def _user_key(username: str) -> tuple[str, str]:
        return ("user", username.strip().lower()[:MAX_USERNAME])

    def _keys(self, username: str, address: str) -> list[tuple[str, str]]:
        return [self._user_key(username), ("addr", address)]

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked(self, username: str, address: str) -> bool:
        now = self._clock.now()
        for key in self._keys(username, address):
            times = self._recent(key, now)
            if times is not None and len(times) >= self._limits[key[0]]:
                return True
        return False

    def failed(self, username: str, address: str) -> None:
        now = self._clock.now()
        for key in self._keys(username, address):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self._limits[key[0]])
            times.append(now)
            self._failures.move_to_end(key)
        self._prune(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(self._user_key(username), None)

    def _prune(self, now: datetime) -> None:
        if len(self._failures) <= self._max_keys:
            return
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


THROTTLE = web.AppKey("login_throttle", LoginThrottle)


# -- keys ---------------------------------------------------------------------
def _derived_fernet(server_key: bytes, purpose: bytes) -> Fernet:
    """A key of its own for each use of the server key, so a cookie can never be
    replayed as a sealed visit secret (or the other way round)."""
    raw = base64.urlsafe_b64decode(server_key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(raw)
    return Fernet(base64.urlsafe_b64encode(derived))


def _secure_cookies(app: web.Application) -> bool:
    settings = app[SETTINGS]
    return settings.tls_enabled or (settings.public_url or "").lower().startswith("https://")


# -- the session ----------------------------------------------------------------
def _now(request: web.Request) -> float:
    return request.app[CLOCK].now().timestamp()


async def current_officer(request: web.Request) -> Officer | None:
    """The signed-in officer, or None (no session, expired, idle too long,
    account gone or deactivated). Refreshes the idle timer."""
    if _LOADED in request:
        return request[_LOADED]
    session = await get_session(request)
    officer: Officer | None = None
    officer_id = session.get(_OFFICER)
    if isinstance(officer_id, str):
        now = _now(request)
        login_at = float(session.get(_LOGIN_AT, 0))
        seen_at = float(session.get(_SEEN_AT, 0))
        expired = (
            now - login_at > SESSION_MAX_AGE.total_seconds()
            or now - seen_at > IDLE_TIMEOUT.total_seconds()
            or login_at > now + 60  # from the future: not ours to trust
        )
        if not expired:
            async with request.app[SERVICE].uow() as uow:
                officer = await uow.officers.get(officer_id)
            if officer is not None and not officer.active:
                officer = None
        if officer is None:
            session.invalidate()
        elif now - seen_at >= _SEEN_RESOLUTION.total_seconds():
            session[_SEEN_AT] = now
    request[_LOADED] = officer
    return officer


def csrf_token(request: web.Request) -> str:
    """The session's CSRF token (created on login). The session must have been
    loaded for this request, which the CSRF middleware does on every request."""
    session: Session | None = request.get("aiohttp_session")
    if session is None:
        return ""
    token = session.get(_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


async def log_in(request: web.Request, username: str, password: str) -> Officer:
    """Check the throttle and the password, then start a fresh session (a new
    cookie: whatever session the browser had before is dropped). Raises
    ``LoginThrottled`` (429) or ``CredentialRejected`` (403)."""
    throttle = request.app[THROTTLE]
    username = username.strip()[:MAX_USERNAME]
    address = request.remote or "unknown"
    if throttle.blocked(username, address):
        raise LoginThrottled()
    try:
        if not username or not password or len(password) > MAX_PASSWORD:
            raise CredentialRejected(
                "login_failed", "用户名或密码错误", "Wrong username or password"
            )
        officer = await request.app[SERVICE].authenticate(username, password)
    except CredentialRejected:
        throttle.failed(username, address)
        raise
    throttle.succeeded(username)
    session = await new_session(request)
    now = _now(request)
    session[_OFFICER] = officer.id
    session[_CSRF] = secrets.token_urlsafe(32)
    session[_LOGIN_AT] = now
    session[_SEEN_AT] = now
    request[_LOADED] = officer
    return officer


async def log_out(request: web.Request) -> None:
    session = await get_session(request)
    session.invalidate()
    request[_LOADED] = None


async def flash(request: web.Request, message: str) -> None:
    """A message shown once on the next page (after a redirect)."""
    session = await get_session(request)
    session[FLASH] = message


async def pop_flash(request: web.Request) -> str | None:
    session = await get_session(request)
    message = session.get(FLASH)
    if message is not None:
        del session[FLASH]
    return message if isinstance(message, str) else None


# -- roles ------------------------------------------------------------------------
def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _refuse(request: web.Request, status: int, code: str, zh: str, en: str) -> web.Response:
    if _is_api(request):
        return web.json_response({"code": code, "message": zh}, status=status)
    lang: Language = pick_language(request, request.app[SETTINGS].language)
    return _render(request, "error.html", status=status, message=zh if lang == "zh" else en)


def _login_redirect(request: web.Request) -> web.HTTPFound:
    target = request.path_qs if request.method in ("GET", "HEAD") else "/console/"
    return web.HTTPFound(str(URL(LOGIN_PATH).with_query(next=target)))


def require_roles(*roles: Role) -> Callable[[Handler], Handler]:
    """Only officers holding one of ``roles`` (any officer when none are given)
    reach the handler, with ``request["officer"]`` set."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            officer = await current_officer(request)
            if officer is None:
                if _is_api(request):
                    return web.json_response(
                        {"code": "login_required", "message": "请先登录"}, status=401
                    )
                raise _login_redirect(request)
            if roles and not officer.roles & set(roles):
                zh = "此操作需要" + "或".join(r.label_zh for r in roles) + "权限"
                en = "This needs the " + " or ".join(r.label_en for r in roles) + " role"
                return _refuse(request, 403, "role_required", zh, en)
            request["officer"] = officer
            return await handler(request)

        return guarded

    return decorate


def safe_next(raw: str | None) -> str:
    """Only a path on this site: never ``//host``, ``/\\host`` or a scheme."""
    default = "/console/"
    if not raw or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return default
    if any(c in raw for c in "\\\r\n\t") or any(ord(c) < 32 for c in raw):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return default
    return raw


# -- CSRF -------------------------------------------------------------------------
def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False  # "null" and other opaque origins
    allowed = {request.host.lower()}
    public_url = request.app[SETTINGS].public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    return parts.netloc.lower() in allowed


def _login_cookie_ok(request: web.Request, supplied: str) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not supplied:
        return False
    try:
        nonce = (
            request.app[LOGIN_FERNET]
            .decrypt_at_time(
                cookie.encode("ascii"), int(LOGIN_FORM_TTL.total_seconds()), int(_now(request))
            )
            .decode("ascii")
        )
    except (InvalidToken, UnicodeError, ValueError):
        return False
    return hmac.compare_digest(nonce.encode(), supplied.encode())


def _new_login_form_token(request: web.Request) -> tuple[str, str]:
    """A fresh token for the login form and its sealed, timestamped copy for the
    pre-login cookie (which only the login path receives)."""
    nonce = secrets.token_urlsafe(32)
    sealed = request.app[LOGIN_FERNET].encrypt_at_time(nonce.encode("ascii"), int(_now(request)))
    return nonce, sealed.decode("ascii")


def _csrf_rejected(request: web.Request) -> web.Response:
    return _refuse(request, 403, "csrf_failed", CSRF_REJECTED_ZH, CSRF_REJECTED_EN)


async def _supplied_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    await get_session(request)  # loaded once here so csrf_token() can be synchronous
    if request.method not in _UNSAFE or not request.path.startswith(_GUARDED):
        return await handler(request)
    if not _origin_ok(request):
        return _csrf_rejected(request)
    if request.path == API_LOGIN_PATH and request.method == "POST":
        if request.content_type != "application/json":
            return _refuse(
                request,
                403,
                "csrf_failed",
                "登录请求须为 application/json",
                "The sign-in request must be application/json",
            )
        return await handler(request)
    if request.path == LOGIN_PATH and request.method == "POST":
        if not _login_cookie_ok(request, await _supplied_token(request)):
            return await render_login(request, error=LOGIN_EXPIRED_ZH, status=403)
        return await handler(request)
    expected = (await get_session(request)).get(_CSRF)
    supplied = await _supplied_token(request)
    if (
        not isinstance(expected, str)
        or not expected
        or not supplied
        or not hmac.compare_digest(expected.encode(), supplied.encode())
    ):
        return _csrf_rejected(request)
    return await handler(request)


# -- the login form ------------------------------------------------------------------
async def render_login(
    request: web.Request, *, error: str | None = None, status: int = 200, username: str = ""
) -> web.Response:
    nonce, sealed = _new_login_form_token(request)
    response = _render(
        request,
        "console/login.html",
        status=status,
        error=error,
        username=username,
        next=safe_next(request.query.get("next")),
        csrf=nonce,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        sealed,
        max_age=int(LOGIN_FORM_TTL.total_seconds()),
        path=LOGIN_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure_cookies(request.app),
    )
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_officer(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return await render_login(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    try:
        await log_in(request, username, password)
    except DomainError as error:
        lang: Language = pick_language(request, request.app[SETTINGS].language)
        return await render_login(
            request, error=error.message(lang), status=error.status, username=username[:64]
        )
    target = safe_next(str(form.get("next", "")) or request.query.get("next"))
    response = web.HTTPSeeOther(target)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await log_out(request)
    raise web.HTTPSeeOther(LOGIN_PATH)


# -- wiring ---------------------------------------------------------------------------
async def _queries(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]  # set by the database context, which runs first
    app[QUERIES] = ConsoleQueries(service.uow, app[CLOCK])
    yield


def setup(app: web.Application) -> None:
    """Session and CSRF middlewares, the console's queries, login and logout.
    Idempotent: the console and the JSON API may both call it."""
    if THROTTLE in app:
        return
    settings = app[SETTINGS]
    key = load_or_create_key(settings.data_dir, settings.secret_key)
    storage = EncryptedCookieStorage(
        _derived_fernet(key, b"visitgate/session-cookie"),
        cookie_name=SESSION_COOKIE,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=_secure_cookies(app),
    )
    app[LOGIN_FERNET] = _derived_fernet(key, b"visitgate/login-form")
    app[THROTTLE] = LoginThrottle(app[CLOCK])
    app.middlewares.append(session_middleware(storage))
    app.middlewares.append(csrf_middleware)
    app.cleanup_ctx.append(_queries)
    app.router.add_get(LOGIN_PATH, login_page, name="console_login")
    app.router.add_post(LOGIN_PATH, login_submit, name="console_login_submit")
    app.router.add_post(LOGOUT_PATH, logout, name="console_logout")
