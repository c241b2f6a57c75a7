"""The engine as the rest of the gateway sees it. `Engine` is its read-only face (requests, readiness, metrics and
the workers' copies read it); `ManagedEngine` adds the start and stop the app's lifespan calls. A launched engine
(supervisor.py), an attached one (attached.py) and a worker's copy (server/workers/engine_view.py) all fit."""

from __future__ import annotations

import asyncio
from typing import Protocol

from server.engine.supervisor import EngineState


class Engine(Protocol):
    url: str  # unix:PATH or http://HOST:PORT (server/engine/address.py)
    api_key: str
    state: EngineState
    state_since: float
    restarts: int
    max_model_len: int | None
    images_per_prompt: int | None  # the profile's limit, when this gateway launched the engine
    last_failure: str | None
    last_log_line: str

    @property
    def ready(self) -> bool: ...


class ManagedEngine(Engine, Protocol):
    failed: asyncio.Event  # set with state FAILED: the gateway exits

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
