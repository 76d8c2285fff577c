"""``/healthz`` (is the database reachable?) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sessions.adapters.sql import ping

from .keys import ENGINE, METRICS, REGISTRY

log = logging.getLogger(__name__)
HEALTH_TIMEOUT = 5.0


async def healthz(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        await asyncio.wait_for(ping(request.app[ENGINE]), HEALTH_TIMEOUT)
    except Exception as exc:  # any failure to reach the database is "unhealthy", never a 500
        log.warning("health check failed: %s", exc)
        metrics.database_up.set(0)
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    metrics.database_up.set(1)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
