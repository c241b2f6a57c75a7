"""The engine as the rest of the gateway sees it. `Engine` is its read-only face (requests, readiness, metrics and
the workers' copies read it); `ManagedEngine` adds the start and stop the app's lifespan calls; `Endpoint` is one
engine at one address. A launched engine (supervisor.py), an attached one (attached.py) and a worker's copy
(server/workers/engine_view.py) are endpoints; a fleet of them (server/fleet/members.py) is a managed engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from server.engine.lifecycle import EngineState


class Engine(Protocol):
    @property
    def state(self) -> EngineState: ...

    @property
    def state_since(self) -> float: ...

    @property
    def restarts(self) -> int: ...

    @property
    def max_model_len(self) -> int | None: ...

    @property
    def images_per_prompt(self) -> int | None:
        """The profile's limit, when this gateway launched the engine."""

    @property
    def last_failure(self) -> str | None: ...

    @property
    def last_log_line(self) -> str: ...

    @property
    def ready(self) -> bool: ...


class ManagedEngine(Engine, Protocol):
    failed: asyncio.Event  # set with state FAILED: the gateway exits

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Endpoint(ManagedEngine, Protocol):
    url: str  # unix:PATH or http://HOST:PORT (server/engine/address.py)
    api_key: str
    served_model: str  # the model id it answers to
    on_change: list[Callable[[], None]]  # called after each change of state
