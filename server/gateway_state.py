"""The state a gateway keeps across requests: admission (capacity, per-key limits, budgets), generation records and
metrics. One process keeps it itself (`local_state`); gateway workers share one copy that the control process keeps
(server/workers/), through objects of the same shape. The request path sees only the shapes below."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from server.access.admission import Admission, Demand
from server.access.auth import KeyLimits, Principal, configured_keys
from server.access.keys import KeyStore
from server.fleet.members import Fleet
from server.record_store import RecordStore
from server.schemas.record import GenerationRecord
from server.settings import Settings
from server.telemetry.metrics import Metrics


class Hold(Protocol):
    """An admitted request's hold on capacity; releasing twice is harmless."""

    def release(self, used_tokens: int | None = None) -> None: ...


@contextlib.contextmanager
def released(ticket: Hold, *, on_error_only: bool = False) -> Iterator[None]:
    """The hold released when the block ends (`on_error_only`: only when it raises; the caller hands it on)."""
    try:
        yield
    except BaseException:
        ticket.release()
        raise
    if not on_error_only:
        ticket.release()


class Admits(Protocol):
    @property
    def in_flight(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def draining(self) -> bool: ...

    async def admit(self, principal: Principal, demand: Demand, *, capacity: bool = True) -> Hold: ...


class Records(Protocol):
    def add(self, record: GenerationRecord) -> None: ...

    async def get(self, generation_id: str) -> GenerationRecord | None: ...

    async def usage(self, key_id: str | None) -> tuple[int, float]: ...

    async def activity(self, since: float, day: str | None, key_id: str | None) -> list[list[Any]]: ...

    async def total_cost(self) -> float: ...

    async def spent_before(self, key_id: str | None, since: float) -> float: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


async def budget_spent(records: Records, key_id: str | None, limits: KeyLimits) -> float:
    """What counts against a key's cost budget: all it spent, or for a budget that resets, what it spent since the
    window began."""
    _, cost = await records.usage(key_id)
    since = limits.cost_budget_since
    return cost - (await records.spent_before(key_id, since) if since is not None else 0.0)


@dataclass(frozen=True)
class GatewayState:
    admission: Admits
    records: Records
    metrics: Metrics


@dataclass(frozen=True)
class LocalState(GatewayState):
    """The state kept in this process, with its concrete types (the single-process gateway, the control process)."""

    admission: Admission
    records: RecordStore


def key_ids(settings: Settings) -> dict[str, str]:
    """Every key's id by its label, as the keys stand now: configured ones, then those made through the API."""
    configured = {spec.label: spec.sha256 for spec in configured_keys(settings.api_keys, settings.keys_file)}
    return configured | KeyStore(settings.keys_path).ids()


def local_state(settings: Settings, engine: Fleet) -> LocalState:
    records = RecordStore(settings.records_path, settings.records_retention_days, key_ids(settings))
    admission = Admission(
        max_in_flight=settings.max_in_flight,
        max_waiting=settings.max_waiting,
        max_tokens_in_flight=settings.max_tokens_in_flight,
        queue_timeout_s=settings.queue_timeout_s,
        retry_after_s=settings.retry_after_s,
        engine=engine,
        spent=records.spent,
        spent_before=records.spent_before,
    )
    return LocalState(admission, records, Metrics())
