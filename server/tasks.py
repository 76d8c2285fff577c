"""Every background task has an owner, and its failure is logged, never lost:
the owners (relays, rooms, socket writers, the recognition pool) attach
``log_failure`` as a done-callback to each task they start."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("visitgate.tasks")


def log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
