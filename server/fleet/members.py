"""A fleet's engines as one. Each `Member` is an engine at one address (launched here, attached, or a worker's view
of either) with the gateway's own view of it: out of rotation since a request or a probe found it not answering,
its load, what this process has sent it. `Fleet` starts and stops them all and shows the rest of the gateway one
engine's face: ready while any member can take requests, the smallest context of any, restarts summed. Members may
serve different models (`serving`: each model's members). One engine is a fleet of one, and behaves exactly as that
engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from server.engine.lifecycle import EngineState
from server.engine.protocol import Endpoint
from server.fleet.load import Load
from server.fleet.watch import watch_members

log = logging.getLogger("mistral_local.fleet")

# When no member can take requests, the fleet says the most hopeful of its members' states.
_HOPE = (EngineState.RESTARTING, EngineState.STARTING, EngineState.STOPPING, EngineState.STOPPED)


class Member:
    def __init__(self, name: str, engine: Endpoint, *, router: bool = False) -> None:
        self.name = name
        self.engine = engine
        self.router = router  # an llm-d, vLLM router or production-stack endpoint: it gets X-Session-ID
        self.in_flight = 0  # this process's requests on it now
        self.out: str | None = None  # why it is out of rotation, until a probe finds it answering again
        self.load = Load()
        self.on_out: list[Callable[[Member], None]] = []  # called when it leaves rotation (the engine client's)
        self.on_change: list[Callable[[], None]] = []  # called when it leaves or rejoins rotation (the fleet's)

    @property
    def model(self) -> str:
        """The model id it serves: requests for another go elsewhere."""
        return self.engine.served_model

    @property
    def usable(self) -> bool:
        return self.engine.ready and self.out is None

    @property
    def busy(self) -> float:
        """Requests on it: the engine's own count, or what this process has sent it if that is more (the engine's
        figures are a probe old)."""
        return max(float(self.in_flight), self.load.running + self.load.waiting)

    def eject(self, why: str) -> None:
        if self.out is None:
            log.warning("engine %s out of rotation: %s", self.name, why)
            self.out = why
            for hook in self.on_out:
                hook(self)
            for change in self.on_change:
                change()

    def readmit(self) -> None:
        if self.out is not None:
            log.info("engine %s back in rotation", self.name)
            self.out = None
            for change in self.on_change:
                change()

    def describe(self) -> dict[str, Any]:
        """For /health/ready and /status (no address, no key)."""
        state = self.engine.state.value if self.out is None else EngineState.UNREACHABLE.value
        return {
            "name": self.name,
            "model": self.model,
            "state": state,
            "restarts": self.engine.restarts,
            "in_flight": self.in_flight,
            "running": self.load.running,
            "waiting": self.load.waiting,
            "kv_cache_usage": round(self.load.kv_usage, 4),
            "prefix_cache_hit_rate": round(self.load.prefix_hit_rate, 4),
            # vLLM's counters since the engine started: a benchmark takes their difference over its run
            "prefix_cache_queries": self.load.prefix_queries,
            "prefix_cache_hits": self.load.prefix_hits,
            "requests": self.load.requests,
            **({"out": self.out} if self.out is not None else {}),
        }


class Fleet:
    """The members, started and stopped together; the gateway's `ManagedEngine`. `failed` is set once every member
    has failed to start (a member that fails alone leaves the others serving). What requests read (state, ready,
    ready_count, context) are plain attributes, worked out again on every change of a member."""

    def __init__(self, members: list[Member], *, watch: bool = True) -> None:
        """`watch`: probe each member from this process (a worker follows what its control process saw instead)."""
        if not members:
            raise ValueError("a fleet needs at least one engine")
        self.members = members
        self.watch = watch
        self.failed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        for m in members:
            m.engine.on_change.append(self.refresh)
            m.on_change.append(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        # Each model's members, in the members' order (a worker's views learn their models from the control process).
        self.serving: dict[str, list[Member]] = {}
        for m in self.members:
            self.serving.setdefault(m.model, []).append(m)
        usable = [m for m in self.members if m.usable]
        self.ready_count = len(usable)  # admission's capacity is this many engines' worth
        self.state = EngineState.READY if usable else state_of(self.members)
        self.ready = self.state is EngineState.READY
        self.state_since = max(m.engine.state_since for m in self.members)
        self.restarts = sum(m.engine.restarts for m in self.members)
        # The smallest context and image limit of any engine: a request that fits goes to any of them.
        self.max_model_len = _least(m.engine.max_model_len for m in self.members)
        self.images_per_prompt = _least(m.engine.images_per_prompt for m in self.members)
        # Each model's: the smallest context of the engines serving it.
        self.contexts = {model: _least(m.engine.max_model_len for m in ms) for model, ms in self.serving.items()}

    def members_for(self, model: str) -> list[Member]:
        """The members serving `model` (every member when all serve one model: nothing to look up)."""
        return self.members if len(self.serving) == 1 else self.serving.get(model, [])

    @property
    def last_failure(self) -> str | None:
        return next((m.engine.last_failure for m in self.members if m.engine.last_failure), None)

    @property
    def last_log_line(self) -> str:
        return next((m.engine.last_log_line for m in self.members if m.engine.last_log_line), "")

    async def start(self) -> None:
        for m in self.members:
            await m.engine.start()
        self._watcher = asyncio.create_task(self._follow(), name="fleet")

    async def _follow(self) -> None:
        waits = [asyncio.create_task(m.engine.failed.wait()) for m in self.members]
        probing = asyncio.create_task(watch_members(self.members)) if self.watch else None
        try:
            await asyncio.gather(*waits)
            log.error("every engine of the fleet failed to start")
            self.failed.set()
        finally:
            for task in (*waits, probing):
                if task is not None:
                    task.cancel()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await asyncio.gather(*(m.engine.stop() for m in self.members))


def state_of(members: Iterable[Member]) -> EngineState:
    """The state these members show together: ready while one is usable, else the most hopeful of theirs."""
    members = list(members)
    if any(m.usable for m in members):
        return EngineState.READY
    states = {m.engine.state for m in members}
    if EngineState.READY in states:  # ready, but out of rotation
        return EngineState.UNREACHABLE
    return next((s for s in _HOPE if s in states), EngineState.FAILED)


def _least(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def fleet_of(engine: Fleet | Endpoint) -> Fleet:
    """One engine is a fleet of one."""
    return engine if isinstance(engine, Fleet) else Fleet([Member("engine", engine)])
