"""Identifiers: opaque internal ids and the application number people read out."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime


def new_id() -> str:
    return uuid.uuid4().hex


def application_number(submitted_local: datetime) -> str:
    """``20261124-483920``: the date makes it easy to read out on the phone; the
    random part keeps numbers from being enumerated (the status page also asks
    for the ID number)."""
    return f"{submitted_local:%Y%m%d}-{secrets.randbelow(10**6):06d}"
