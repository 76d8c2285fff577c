"""The VisitGate domain: facilities and their rules, people, applications,
appointments, visit credentials, the visit state machine and its clock, and the
audit chain.

Plain Python only. Nothing under this package (apart from ``sessions.adapters``)
may import aiohttp, aiortc, SQLAlchemy, asyncpg or redis: the web, media and
storage layers are adapters that call in here, never the other way round.
"""
