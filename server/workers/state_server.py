"""The control process's side of the shared state: admission, records and the engine's state, served to workers.

Each worker holds one connection. Releases and records are applied the moment they arrive, in order, so a record a
worker sent before its response's last byte is readable by any worker the client asks next. Admissions that must
wait for a slot wait here, where every worker's requests queue together. When a worker's connection closes (it
exited or was killed) its tickets are released. Every PUBLISH_INTERVAL_S the state workers display (engine state,
in flight, waiting, draining) is sent to all of them if it changed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

from server.access.admission import Admission, Demand, Ticket
from server.access.auth import KeyLimits, Principal
from server.errors import GatewayError, error_fields
from server.fleet.members import Fleet
from server.record_store import RecordStore
from server.schemas.record import GenerationRecord
from server.tasks import cancel_and_wait
from server.workers.engine_view import describe
from server.workers.frames import FramedProtocol

log = logging.getLogger("mistral_local.workers")
PUBLISH_INTERVAL_S = 0.05


class StateServer:
    def __init__(self, admission: Admission, records: RecordStore, engine: Fleet) -> None:
        self.admission, self.records, self.engine = admission, records, engine
        self.workers: set[_WorkerLink] = set()
        self._server: asyncio.Server | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._published: dict[str, Any] = {}

    async def start(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _WorkerLink(self), str(path))
        self._publisher = asyncio.create_task(self._publish_changes(), name="state-publisher")

    def snapshot(self) -> dict[str, Any]:
        a = self.admission
        status = {"in_flight": a.in_flight, "waiting": a.waiting, "draining": a.draining}
        return {"op": "state", "engine": describe(self.engine), "status": status}

    def publish(self) -> None:
        """Send the state to every worker now if it changed (draining is published at once, not at the next tick)."""
        snapshot = self.snapshot()
        if snapshot != self._published:
            self._published = snapshot
            for worker in self.workers:
                worker.send(snapshot)

    async def _publish_changes(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_INTERVAL_S)

    async def close(self) -> None:
        await cancel_and_wait(self._publisher)
        if self._server is not None:
            self._server.close()
            for worker in list(self.workers):
                if worker.transport is not None:
                    worker.transport.close()
            await self._server.wait_closed()


def peer_uid(transport: asyncio.BaseTransport) -> int | None:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return int(uid)


class _WorkerLink(FramedProtocol):
    """One worker's connection, and the tickets it holds."""

    def __init__(self, server: StateServer) -> None:
        super().__init__()
        self.server = server
        self.tickets: dict[int, Ticket] = {}
        self._ids = itertools.count(1)
        self._answering: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if peer_uid(transport) != os.getuid():  # the directory is 0700; this holds even if someone loosens it
            log.error("shared state: refusing a connection from another user (uid %s)", peer_uid(transport))
            transport.close()
            return
        self.server.workers.add(self)
        self.send(self.server.snapshot())

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.workers.discard(self)
        for task in self._answering:
            task.cancel()
        if self.tickets:
            log.warning("a gateway worker left holding %d admission(s); releasing them", len(self.tickets))
        for ticket in self.tickets.values():
            ticket.release()
        self.tickets.clear()

    def received(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "release":
            ticket = self.tickets.pop(message["ticket"], None)
            if ticket is not None:
                ticket.release(message.get("used"))
        elif op == "record":
            try:
                record = GenerationRecord(**message["record"])
            except (TypeError, ValueError) as exc:  # a record that cannot be real would rewrite a key's spending
                log.error("shared state: dropping an invalid generation record: %s", exc)
                return
            self.server.records.add(record)
        else:
            task = asyncio.get_running_loop().create_task(self._answer(message))
            self._answering.add(task)  # asyncio keeps only weak references to tasks
            task.add_done_callback(self._answering.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        try:
            reply = await self._call(message)
        except GatewayError as exc:
            reply = {"error": error_fields(exc)}
        except Exception:  # the worker waits for an answer: it gets one, whatever happened
            log.exception("shared state: %s failed", message["op"])
            reply = {"error": error_fields(GatewayError("Internal server error"))}
        self.send({"id": message["id"], **reply})

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message["op"]
        if op == "admit":
            principal = Principal(message["label"], KeyLimits(**message["limits"]), key_id=message["key_id"])
            demand = Demand(**message["demand"])
            ticket = await self.server.admission.admit(principal, demand, capacity=message["capacity"])
            ticket_id = next(self._ids)
            self.tickets[ticket_id] = ticket
            return {"ticket": ticket_id, "engine": describe(self.server.engine)}
        if op == "get":
            record = await self.server.records.get(message["generation"])
            return {"record": asdict(record) if record is not None else None}
        if op == "usage":
            return {"usage": self.server.records.spent(message["key_id"])}
        if op == "activity":
            return {"rows": await self.server.records.activity(message["since"], message["day"], message["key_id"])}
        if op == "spent_before":
            return {"cost": await self.server.records.spent_before(message["key_id"], float(message["since"]))}
        if op == "total_cost":
            return {"cost": self.server.records.spent_by_all()}
        raise GatewayError(f"unknown operation {op!r}")
