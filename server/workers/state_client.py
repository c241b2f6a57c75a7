"""A worker's side of the shared state: admission, records and the engine's state, asked of the control process
(server/workers/state_server.py) over one connection. Same shapes as the single-process objects
(server/gateway_state.py), so the request path does not know which it has."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Any

from server.access.admission import Demand
from server.access.auth import Principal
from server.errors import EngineUnavailable, error_for_status
from server.fleet.members import Fleet
from server.schemas.record import GenerationRecord
from server.workers.engine_view import follow
from server.workers.frames import FramedProtocol

CONNECT_TIMEOUT_S = 30.0


class StateLink(FramedProtocol):
    """The connection to the control process: calls with answers, messages without, and its state as last sent."""

    def __init__(self, engine: Fleet, retry_after_s: int) -> None:
        super().__init__()
        self.engine = engine
        self.retry_after_s = retry_after_s
        self.status: dict[str, Any] = {"in_flight": 0, "waiting": 0, "draining": False}
        self.first_state: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, path: Path, engine: Fleet, retry_after_s: int) -> StateLink:
        """Connected, with the engine's state known."""
        _, link = await asyncio.get_running_loop().create_unix_connection(lambda: cls(engine, retry_after_s), str(path))
        await asyncio.wait_for(link.first_state, CONNECT_TIMEOUT_S)
        return link

    def received(self, message: dict[str, Any]) -> None:
        call = self._calls.pop(message.get("id", 0), None)
        if call is not None and not call.done():
            call.set_result(message)
        elif "ticket" in message:  # admitted after the request gave up (its client left): give the slot back
            self.send({"op": "release", "ticket": message["ticket"]})
        elif message.get("op") == "state":
            follow(self.engine, message["engine"])
            self.status = message["status"]
            if not self.first_state.done():
                self.first_state.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        gone = self._gone()
        for call in self._calls.values():
            if not call.done():
                call.set_exception(gone)
        self._calls.clear()
        if not self.first_state.done():
            self.first_state.set_exception(gone)

    def _gone(self) -> EngineUnavailable:
        return EngineUnavailable("The gateway is restarting", retry_after=self.retry_after_s)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """The control process's answer; its errors are raised as the gateway errors they were."""
        if self.lost.is_set():
            raise self._gone()
        call_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = answer
        self.send({**message, "id": call_id})
        try:
            reply = await answer
        finally:
            self._calls.pop(call_id, None)
        if "error" in reply:
            error = reply["error"]
            raise error_for_status(error.pop("status"), error.pop("message"), **error)
        return reply


class SharedTicket:
    def __init__(self, link: StateLink, ticket_id: int) -> None:
        self._link, self._id = link, ticket_id
        self._released = False

    def release(self, used_tokens: int | None = None) -> None:
        if not self._released:
            self._released = True
            self._link.send({"op": "release", "ticket": self._id, "used": used_tokens})


class SharedAdmission:
    """Admission decided by the control process, for every worker's requests together."""

    def __init__(self, link: StateLink) -> None:
        self._link = link

    @property
    def in_flight(self) -> int:
        return int(self._link.status["in_flight"])

    @property
    def waiting(self) -> int:
        return int(self._link.status["waiting"])

    @property
    def draining(self) -> bool:
        return bool(self._link.status["draining"])

    async def admit(self, principal: Principal, demand: Demand, *, capacity: bool = True) -> SharedTicket:
        limits = principal.limits.model_dump()
        message = {
            "op": "admit",
            "label": principal.label,
            "key_id": principal.key_id,
            "limits": limits,
            "capacity": capacity,
        }
        reply = await self._link.call(message | {"demand": asdict(demand)})
        # Admitted against these engines: the request goes to them even if the last published state is older.
        follow(self._link.engine, reply["engine"])
        return SharedTicket(self._link, reply["ticket"])


class SharedRecords:
    """Generation records kept by the control process (one SQLite writer for all workers)."""

    def __init__(self, link: StateLink) -> None:
        self._link = link

    def add(self, record: GenerationRecord) -> None:
        self._link.send({"op": "record", "record": asdict(record)})

    async def get(self, generation_id: str) -> GenerationRecord | None:
        found = (await self._link.call({"op": "get", "generation": generation_id}))["record"]
        return GenerationRecord(**found) if found is not None else None

    async def usage(self, key_id: str | None) -> tuple[int, float]:
        tokens, cost = (await self._link.call({"op": "usage", "key_id": key_id}))["usage"]
        return int(tokens), float(cost)

    async def activity(self, since: float, day: str | None, key_id: str | None) -> list[list[Any]]:
        rows: list[list[Any]] = (
            await self._link.call({"op": "activity", "since": since, "day": day, "key_id": key_id})
        )["rows"]
        return rows

    async def total_cost(self) -> float:
        return float((await self._link.call({"op": "total_cost"}))["cost"])

    async def spent_before(self, key_id: str | None, since: float) -> float:
        return float((await self._link.call({"op": "spent_before", "key_id": key_id, "since": since}))["cost"])

    async def open(self) -> None:
        """Nothing to open: the control process opened the database."""

    async def close(self) -> None:
        """Nothing to close: records already sent are the control process's to write."""
