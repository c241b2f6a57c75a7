"""Admission: who may start a generation now.

Global bounds, in requests and in tokens (prompt estimate + max_tokens), cap what is in flight; a bounded number of
requests may wait for a slot, each at most `queue_timeout_s`. Past either bound the answer is 429 with
`Retry-After` at once: an accepted request keeps its latency, and no request waits past its client's patience.
Per key: requests per minute, tokens per minute and concurrent requests (429), and budgets (402). While the
engine is not ready, or the gateway drains, the answer is 503.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from server.auth import Principal
from server.errors import EngineUnavailable, Overloaded, PaymentRequired

WINDOW_S = 60.0


def check_budget(principal: Principal, spent_tokens: int, spent_cost: float) -> None:
    """402 once a key's token or cost budget is spent (hosted upstream calls are held to it too)."""
    limits = principal.limits
    if limits.token_budget is not None and spent_tokens >= limits.token_budget:
        raise PaymentRequired(f"Key '{principal.label}' has used its token budget of {limits.token_budget}")
    if limits.cost_budget is not None and spent_cost >= limits.cost_budget:
        raise PaymentRequired(f"Key '{principal.label}' has used its cost budget of ${limits.cost_budget}")


@dataclass
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_in_window: int = 0  # the sum over `tokens`, kept as it changes: summing it per request grew with the rate
    in_flight: int = 0

    def forget_before(self, cutoff: float) -> None:
        while self.requests and self.requests[0] < cutoff:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] < cutoff:
            self.tokens_in_window -= self.tokens.popleft()[1]


class Ticket:
    """An admitted request's hold on capacity; `release` is idempotent (streams release in `finally`)."""

    def __init__(self, admission: Admission, principal: Principal, tokens: int) -> None:
        self._admission, self.principal, self.tokens = admission, principal, tokens
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self)


class Admission:
    def __init__(
        self,
        *,
        max_in_flight: int,
        max_waiting: int,
        max_tokens_in_flight: int,
        queue_timeout_s: float,
        retry_after_s: int,
        engine_state: Callable[[], str],
        spent: Callable[[str | None], tuple[int, float]],
    ) -> None:
        """`engine_state`: the engine's state now ("ready" admits); `spent`: a key's (tokens, cost) so far."""
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.max_tokens_in_flight = max_tokens_in_flight
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._engine_state, self._spent = engine_state, spent
        self.in_flight = 0
        self.tokens_in_flight = 0
        self.waiting = 0
        self.draining = False
        self._changed = asyncio.Condition()
        self._keys: dict[str | None, _KeyState] = {}
        self._notifiers: set[asyncio.Task[None]] = set()

    def _fits(self, tokens: int) -> bool:
        if self.in_flight >= self.max_in_flight:
            return False
        # One request larger than the token bound still runs, alone.
        return self.in_flight == 0 or self.tokens_in_flight + tokens <= self.max_tokens_in_flight

    def _overloaded(self, why: str, retry_after: int | None = None) -> Overloaded:
        return Overloaded(
            f"Rate limit exceeded: {why}",
            retry_after=retry_after or self.retry_after_s,
            metadata={"limit_source": "mistral-local"},
        )

    def _check_key(self, principal: Principal, tokens: int) -> _KeyState | None:
        """The key's counters, None for a key with no per-minute or concurrency limit (nothing to count)."""
        limits, now = principal.limits, time.monotonic()
        check_budget(principal, *self._spent(principal.label))
        if (limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent_requests) == (None, None, None):
            return None
        state = self._keys.setdefault(principal.label, _KeyState())
        state.forget_before(now - WINDOW_S)
        if limits.requests_per_minute is not None and len(state.requests) >= limits.requests_per_minute:
            wait = math.ceil(state.requests[0] + WINDOW_S - now)
            raise self._overloaded(f"{limits.requests_per_minute} requests per minute for this key", wait)
        used = state.tokens_in_window
        if limits.tokens_per_minute is not None and used + tokens > limits.tokens_per_minute and state.tokens:
            wait = math.ceil(state.tokens[0][0] + WINDOW_S - now)
            raise self._overloaded(f"{limits.tokens_per_minute} tokens per minute for this key", wait)
        if limits.concurrent_requests is not None and state.in_flight >= limits.concurrent_requests:
            raise self._overloaded(f"{limits.concurrent_requests} concurrent requests for this key")
        return state

    async def admit(self, principal: Principal, tokens: int) -> Ticket:
        engine_state = self._engine_state()
        if self.draining or engine_state != "ready":
            why = "Server is shutting down" if self.draining else f"Engine is {engine_state}"
            raise EngineUnavailable(why, retry_after=self.retry_after_s)
        state = self._check_key(principal, tokens)
        if not self._fits(tokens):
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
        if state is not None:
            now = time.monotonic()
            state.requests.append(now)
            state.tokens.append((now, tokens))
            state.tokens_in_window += tokens
            state.in_flight += 1
        self.in_flight += 1
        self.tokens_in_flight += tokens
        return Ticket(self, principal, tokens)

    def _release(self, ticket: Ticket) -> None:
        self.in_flight -= 1
        self.tokens_in_flight -= ticket.tokens
        if (state := self._keys.get(ticket.principal.label)) is not None:
            state.in_flight -= 1
        if self.waiting:  # wake waiters only when there are some: releases are on every request's path
            task = asyncio.get_running_loop().create_task(self._notify())
            self._notifiers.add(task)  # asyncio keeps only weak references to tasks
            task.add_done_callback(self._notifiers.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
