"""The engines as a worker sees them: what the control process last said of each member of its fleet (state,
address, key, context length, load, whether it is out of rotation). The worker routes its own requests over them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from server.engine.lifecycle import EngineState
from server.fleet.load import Load
from server.fleet.members import Fleet, Member

_FIELDS = ("url", "api_key", "served_model", "max_model_len", "images_per_prompt", "restarts", "last_failure")


def describe(fleet: Fleet) -> dict[str, Any]:
    """What a worker needs to know of each engine, as plain data."""
    return {"members": [_member(m) for m in fleet.members]}


def _member(m: Member) -> dict[str, Any]:
    engine = {name: getattr(m.engine, name) for name in _FIELDS}
    return {"state": m.engine.state.value, **engine, "out": m.out, "load": asdict(m.load)}


class EngineView:
    """Starts and stops nothing: the control process runs the engine; this copy follows its description."""

    def __init__(self) -> None:
        self.url = ""  # the control process says where
        self.api_key = ""
        self.served_model = ""
        self.state = EngineState.STOPPED
        self.state_since = time.monotonic()
        self.restarts = 0
        self.max_model_len: int | None = None
        self.images_per_prompt: int | None = None
        self.last_failure: str | None = None
        self.last_log_line = ""  # the control process shows the engine's log
        self.failed = asyncio.Event()  # never set: a failed engine stops the control process, and so the workers
        self.on_change: list[Callable[[], None]] = []

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    def apply(self, described: dict[str, Any]) -> None:
        for name in _FIELDS:
            setattr(self, name, described[name])
        state = EngineState(described["state"])
        if state is not self.state:  # not logged: the control process logs the engine's changes once
            self.state, self.state_since = state, time.monotonic()
        for hook in self.on_change:
            hook()

    async def start(self) -> None:
        """Already following: the control process sent the engine's state before this worker's app was built."""

    async def stop(self) -> None:
        """The control process stops the engine."""


def view_fleet(names: list[str]) -> Fleet:
    """The worker's fleet: a view of each of the control process's members, probed by the control process only."""
    return Fleet([Member(name, EngineView()) for name in names], watch=False)


def follow(fleet: Fleet, described: dict[str, Any]) -> None:
    for member, seen in zip(fleet.members, described["members"], strict=True):
        assert isinstance(member.engine, EngineView)
        member.engine.apply(seen)
        member.load = Load(**seen["load"])
        if seen["out"] is None:
            member.readmit()
        else:
            member.eject(seen["out"])
