"""Ending a background task: cancelled once, then waited for."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` and wait until it has ended, even when the caller is cancelled meanwhile: a second cancel would
    cut the task's own cleanup short (a connection left open, an engine left generating). Its failure, if it failed
    rather than stopped, is raised here."""
    if task is None:
        return
    task.cancel()
    with anyio.CancelScope(shield=True):
        await asyncio.wait({task})
    if not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
