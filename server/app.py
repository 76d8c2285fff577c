"""``create_app(settings)``: the one place that wires the web process.

Resources (the database engine, the service) are created in ``cleanup_ctx``
when the app starts and released when it stops; nothing is created at import
time, so tests can build as many apps as they like side by side.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from prometheus_client import CollectorRegistry

from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from sessions.clock import Clock, SystemClock
from sessions.passwords import Argon2Hasher
from sessions.services import VisitGateService

from . import api, console, faces, health, live, notify, pages, snapshots
from . import public as public_pages
from .keys import CLOCK, ENGINE, METRICS, REGISTRY, SERVICE, SETTINGS
from .media import wiring as media_wiring
from .metrics import Metrics
from .secrets import FernetSealer, load_or_create_key
from .settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "client_web" / "templates"
STATIC = Path(__file__).resolve().parent.parent / "client_web" / "static"


def _version() -> str:
    try:
        return version("visitgate")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def create_app(
    settings: Settings, *, clock: Clock | None = None, migrate: bool = True
) -> web.Application:
    app = web.Application(middlewares=[_metrics_middleware], client_max_size=10 * 1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    registry = CollectorRegistry()
    app[REGISTRY] = registry
    app[METRICS] = Metrics.create(registry, _version())
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    app.cleanup_ctx.append(_database(migrate))
    health.setup_routes(app)
    pages.setup_routes(app)
    # -- feature routes (each feature module adds its own setup call here) --
    console.setup(app)  # also installs server.auth (sessions, CSRF, login)
    api.setup(app)  # after auth: its error middleware sits inside the session one
    public_pages.setup(app)
    notify.setup(app)
    live.setup(app)  # /ws/visit: live-visit signalling, its registry and sweeper
    media_wiring.setup(app)  # a VisitMedia per live visit, ICE host addresses
    snapshots.setup(app)  # face-check snapshots under the data dir (officers only)
    faces.setup(app)  # face checks on live visits: taps, worker pool, alerts
    app.router.add_static("/static/", STATIC, name="static")
    return app


def _database(migrate: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url)
        try:
            if migrate:
                await upgrade(engine)
            app[ENGINE] = engine
            key = load_or_create_key(settings.data_dir, settings.secret_key)
            app[SERVICE] = VisitGateService(
                SqlUnitOfWorkFactory(engine),
                app[CLOCK],
                Argon2Hasher(),
                publish=live.publisher(app),
                sealer=FernetSealer(key),
            )
            yield
        finally:
            await engine.dispose()

    return database


@web.middleware
async def _metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(name, str(status)).inc()
        metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
