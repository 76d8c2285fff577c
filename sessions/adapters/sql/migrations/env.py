"""Alembic environment for VisitGate: runs on the connection it is handed, nothing else.

``sessions.adapters.sql.migrate`` opens the transaction and passes its
connection in ``config.attributes["connection"]``. This file must never create
an engine, read alembic.ini or the environment, or run offline: the one place
that knows the database URL is the caller.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sessions.adapters.sql.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; use migrate.upgrade()")

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "run migrations through sessions.adapters.sql.migrate.upgrade(engine), "
        "which passes the connection in config.attributes['connection']"
    )
run_migrations(_connection)
