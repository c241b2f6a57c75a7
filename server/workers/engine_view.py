"""The engine as a worker sees it: what the control process last said of it (state, address, context length)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from server.engine.protocol import Engine
from server.engine.supervisor import EngineState

_FIELDS = ("url", "api_key", "max_model_len", "images_per_prompt", "restarts", "last_failure")


def describe(engine: Engine) -> dict[str, Any]:
    """What a worker needs to know of the engine, as plain data."""
    return {"state": engine.state.value, **{name: getattr(engine, name) for name in _FIELDS}}


class EngineView:
    """Starts and stops nothing: the control process runs the engine; this copy follows its `describe`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.api_key = ""
        self.state = EngineState.STOPPED
        self.state_since = time.monotonic()
        self.restarts = 0
        self.max_model_len: int | None = None
        self.images_per_prompt: int | None = None
        self.last_failure: str | None = None
        self.last_log_line = ""  # the control process shows the engine's log
        self.failed = asyncio.Event()  # never set: a failed engine stops the control process, and so the workers

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    def apply(self, described: dict[str, Any]) -> None:
        for name in _FIELDS:
            setattr(self, name, described[name])
        state = EngineState(described["state"])
        if state is not self.state:  # not logged: the control process logs the engine's changes once
            self.state, self.state_since = state, time.monotonic()

    async def start(self) -> None:
        """Already following: the control process sent the engine's state before this worker's app was built."""

    async def stop(self) -> None:
        """The control process stops the engine."""
