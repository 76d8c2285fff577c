"""Typed keys for what ``create_app`` puts on the application."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sessions.clock import Clock
from sessions.queries import ConsoleQueries
from sessions.services import VisitGateService

from .metrics import Metrics
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SERVICE = web.AppKey("service", VisitGateService)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", Metrics)
QUERIES = web.AppKey("queries", ConsoleQueries)
