"""Admission: who may start a generation now.

Global bounds, in requests and in tokens (prompt estimate + max_tokens), cap what is in flight; a bounded number of
requests may wait for a slot, each at most `queue_timeout_s`. Past either bound the answer is 429 with
`Retry-After` at once: an accepted request keeps its latency, and no request waits past its client's patience.
Per key: requests per minute, tokens per minute and concurrent requests (429), and budgets (402). A key's limits
count each request at its worst case (`Demand.worst`) while it runs, so concurrent requests cannot overshoot a
budget or a per-minute limit, and at what it used once it ends. While the engine is not ready, or the gateway
drains, the answer is 503.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from server.access.auth import KeyLimits, Principal
from server.engine.lifecycle import EngineState
from server.errors import EngineUnavailable, Overloaded, PaymentRequired, availability

WINDOW_S = 60.0
NO_LIMITS = KeyLimits()


@dataclass(frozen=True)
class Demand:
    """What a request may use. `tokens`: its typical size (prompt estimate + max_tokens, or a typical answer), for
    the server-wide bound. `worst`: the most it can use (without max_tokens a request may run to the end of the
    context; each sequence of a multi-prompt request counts), for a key's limits and budgets. `cost`: that worst
    case in USD."""

    tokens: int
    worst: int
    cost: float = 0.0


class _Unit(NamedTuple):
    budget: str  # which budget: "token" or "cost"
    verb: str  # what a request does to it
    amount: Callable[[float], str]


TOKENS = _Unit("token", "use", lambda n: f"{n:.0f} tokens")
DOLLARS = _Unit("cost", "cost", lambda n: f"${n:.6f}")


def check_budget(principal: Principal, spent_tokens: int, spent_cost: float, demand: Demand | None = None) -> None:
    """402 once a key's token or cost budget is spent, or when this request could take it past its budget
    (OpenRouter's rule for credits: ask for fewer max_tokens). `spent_*` include what the key has in flight."""
    limits = principal.limits
    if limits.token_budget is not None:
        _check(principal.label, TOKENS, limits.token_budget, spent_tokens, demand.worst if demand else 0)
    if limits.cost_budget is not None:
        _check(principal.label, DOLLARS, limits.cost_budget, spent_cost, demand.cost if demand else 0.0)


def _check(label: str | None, unit: _Unit, budget: float, spent: float, wanted: float) -> None:
    if spent >= budget:
        raise PaymentRequired(f"Key '{label}' has used its {unit.budget} budget of {unit.amount(budget)}")
    if spent + wanted > budget:
        raise PaymentRequired(
            f"This request may {unit.verb} up to {unit.amount(wanted)}, but key '{label}' has "
            f"{unit.amount(budget - spent)} left of its budget: send a smaller max_tokens"
        )


@dataclass
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    # (admitted at, tokens): worst cases while in flight, corrected to what was used at release.
    tokens: deque[list[float]] = field(default_factory=deque)
    tokens_in_window: int = 0  # the sum over `tokens`, kept as it changes: summing it per request grew with the rate
    in_flight: int = 0
    worst_in_flight: int = 0  # tokens and cost the key's requests in flight may still use (budgets)
    cost_in_flight: float = 0.0

    def forget_before(self, cutoff: float) -> None:
        while self.requests and self.requests[0] < cutoff:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] < cutoff:
            self.tokens_in_window -= int(self.tokens.popleft()[1])


class Ticket:
    """An admitted request's hold on capacity; `release` is idempotent (streams release in `finally`)."""

    def __init__(self, admission: Admission, principal: Principal, demand: Demand, capacity: bool) -> None:
        self._admission, self.principal, self.demand, self.capacity = admission, principal, demand, capacity
        self.window_entry: list[float] | None = None
        self._released = False

    def release(self, used_tokens: int | None = None) -> None:
        """`used_tokens`: what the request used (prompt + completion), when known; its worst case stays counted
        in the key's per-minute window otherwise."""
        if not self._released:
            self._released = True
            self._admission._release(self, used_tokens)


class HasState(Protocol):
    """The engines, as admission reads them (server/fleet/members.py `Fleet`)."""

    @property
    def state(self) -> EngineState: ...

    @property
    def ready_count(self) -> int: ...


class Admission:
    def __init__(
        self,
        *,
        max_in_flight: int,
        max_waiting: int,
        max_tokens_in_flight: int,
        queue_timeout_s: float,
        retry_after_s: int,
        engine: HasState,
        spent: Callable[[str | None], tuple[int, float]],
        spent_before: Callable[[str | None, float], Awaitable[float]],
    ) -> None:
        """`engine`: whose state now says whether to admit (ready), and how many engines' worth of room there is
        (`max_in_flight` and `max_tokens_in_flight` are each engine's); `spent`: a key's (tokens, cost) so far;
        `spent_before`: its cost before a budget window began (the records answer it off the event loop)."""
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.max_tokens_in_flight = max_tokens_in_flight
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._engine, self._spent, self._spent_before = engine, spent, spent_before
        self.in_flight = 0
        self.tokens_in_flight = 0
        self.waiting = 0
        self.draining = False
        self._changed = asyncio.Condition()
        self._keys: dict[str | None, _KeyState] = {}
        self._notifiers: set[asyncio.Task[None]] = set()

    def _fits(self, tokens: int) -> bool:
        engines = max(1, self._engine.ready_count)
        if self.in_flight >= self.max_in_flight * engines:
            return False
        # One request larger than the token bound still runs, alone.
        return self.in_flight == 0 or self.tokens_in_flight + tokens <= self.max_tokens_in_flight * engines

    def _overloaded(self, why: str, retry_after: int | None = None, source: str = "mistral-local") -> Overloaded:
        """`source` "key": the key's own limit (no other provider may take the request for it); else every engine
        is full, which OpenRouter says in `error.availability`."""
        retry = retry_after or self.retry_after_s
        full = availability("capacity_exhausted", retry) if source != "key" else None
        return Overloaded(
            f"Rate limit exceeded: {why}", retry_after=retry, metadata={"limit_source": source}, availability=full
        )

    def _check_key(self, principal: Principal, demand: Demand, before: float) -> _KeyState | None:
        """The key's counters, None for a key with no limit at all (nothing to count). `before`: cost spent before
        its budget's window, which does not count."""
        limits, now = principal.limits, time.monotonic()
        if limits == NO_LIMITS:
            return None
        state = self._keys.setdefault(principal.key_id, _KeyState())
        spent_tokens, spent_cost = self._spent(principal.key_id)
        spent_cost -= before
        check_budget(principal, spent_tokens + state.worst_in_flight, spent_cost + state.cost_in_flight, demand)
        state.forget_before(now - WINDOW_S)
        if limits.requests_per_minute is not None and len(state.requests) >= limits.requests_per_minute:
            wait = math.ceil(state.requests[0] + WINDOW_S - now)
            raise self._overloaded(f"{limits.requests_per_minute} requests per minute for this key", wait, "key")
        used = state.tokens_in_window
        if limits.tokens_per_minute is not None and used + demand.worst > limits.tokens_per_minute and state.tokens:
            wait = math.ceil(state.tokens[0][0] + WINDOW_S - now)
            raise self._overloaded(f"{limits.tokens_per_minute} tokens per minute for this key", wait, "key")
        if limits.concurrent_requests is not None and state.in_flight >= limits.concurrent_requests:
            raise self._overloaded(f"{limits.concurrent_requests} concurrent requests for this key", source="key")
        return state

    async def admit(self, principal: Principal, demand: Demand, *, capacity: bool = True) -> Ticket:
        """`capacity` False: a request served elsewhere (the hosted upstream) that holds to the key's limits and
        budgets but takes no local capacity. A key's own limits answer first: a key past them is told so whatever
        the engine's state."""
        since = principal.limits.cost_budget_since
        before = await self._spent_before(principal.key_id, since) if since is not None else 0.0
        state = self._check_key(principal, demand, before)
        if capacity:
            engine_state = self._engine.state
            if self.draining or engine_state is not EngineState.READY:
                why = "Server is shutting down" if self.draining else f"Engine is {engine_state.value}"
                retry = self.retry_after_s
                raise EngineUnavailable(
                    why, retry_after=retry, availability=availability("temporarily_unavailable", retry)
                )
        if capacity and not self._fits(demand.tokens):
            await self._wait_for_room(demand.tokens)
        ticket = Ticket(self, principal, demand, capacity)
        if state is not None:
            now = time.monotonic()
            ticket.window_entry = [now, demand.worst]
            state.requests.append(now)
            state.tokens.append(ticket.window_entry)
            state.tokens_in_window += demand.worst
            state.in_flight += 1
            state.worst_in_flight += demand.worst
            state.cost_in_flight += demand.cost
        if capacity:
            self.in_flight += 1
            self.tokens_in_flight += demand.tokens
        return ticket

    async def _wait_for_room(self, tokens: int) -> None:
        if self.waiting >= self.max_waiting:
            raise self._overloaded("server at capacity")
        self.waiting += 1
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(tokens)), self.queue_timeout_s)
        except TimeoutError:
            raise self._overloaded("server at capacity") from None
        finally:
            self.waiting -= 1

    def _release(self, ticket: Ticket, used_tokens: int | None) -> None:
        demand = ticket.demand
        if (state := self._keys.get(ticket.principal.key_id)) is not None and ticket.window_entry is not None:
            state.in_flight -= 1
            state.worst_in_flight -= demand.worst
            state.cost_in_flight -= demand.cost
            entry = ticket.window_entry
            if used_tokens is not None and state.tokens and entry[0] >= state.tokens[0][0]:  # still in the window
                state.tokens_in_window += used_tokens - int(entry[1])
                entry[1] = used_tokens
        if not ticket.capacity:
            return
        self.in_flight -= 1
        self.tokens_in_flight -= demand.tokens
        if self.waiting:  # wake waiters only when there are some: releases are on every request's path
            task = asyncio.get_running_loop().create_task(self._notify())
            self._notifiers.add(task)  # asyncio keeps only weak references to tasks
            task.add_done_callback(self._notifiers.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
