"""Storage adapter for SQLite and PostgreSQL: one schema, one set of queries.

``create_engine(url)`` makes the engine, ``upgrade(engine)`` migrates it,
``SqlUnitOfWorkFactory(engine)`` is what the service layer is given, and
``ping(engine)`` answers /healthz. Nothing is created at import time.
"""

from __future__ import annotations

from .engine import create_engine, ping
from .migrate import current_revision, head_revision, upgrade
from .repositories import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "create_engine",
    "current_revision",
    "head_revision",
    "ping",
    "upgrade",
]
