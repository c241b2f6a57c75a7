"""Admission bounds, per-key limits and budgets, on the real Admission object (no engine needed)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from server import admission as admission_module
from server.admission import Admission
from server.auth import KeyLimits, Principal
from server.errors import EngineUnavailable, Overloaded, PaymentRequired

ANY = Principal(label=None, limits=KeyLimits())


def admission(**kw: float) -> Admission:
    args: dict[str, float] = {
        "max_in_flight": 2,
        "max_waiting": 1,
        "max_tokens_in_flight": 1000,
        "queue_timeout_s": 0.3,
        "retry_after_s": 3,
    } | kw
    return Admission(**args)  # type: ignore[arg-type]


def test_bounds_queue_and_release() -> None:
    async def run() -> None:
        a = admission()
        t1 = await a.admit(ANY, 100, engine_state="ready")
        await a.admit(ANY, 100, engine_state="ready")
        waiter = asyncio.create_task(a.admit(ANY, 100, engine_state="ready"))  # waits for a slot
        await asyncio.sleep(0.05)
        assert a.waiting == 1
        started = time.monotonic()
        with pytest.raises(Overloaded) as full:  # the queue is full too: refused at once
            await a.admit(ANY, 100, engine_state="ready")
        assert time.monotonic() - started < 0.1
        assert full.value.retry_after == 3 and full.value.status == 429
        t1.release()
        t1.release()  # idempotent
        t3 = await asyncio.wait_for(waiter, 1)
        assert a.in_flight == 2 and a.tokens_in_flight == 200
        t3.release()

    asyncio.run(run())


def test_waiting_gives_up_at_the_queue_timeout() -> None:
    async def run() -> None:
        a = admission(max_in_flight=1)
        await a.admit(ANY, 1, engine_state="ready")
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await a.admit(ANY, 1, engine_state="ready")
        assert 0.25 < time.monotonic() - started < 1.0
        assert a.waiting == 0

    asyncio.run(run())


def test_token_bound_admits_one_oversized_request_alone() -> None:
    async def run() -> None:
        a = admission(max_tokens_in_flight=1000, max_waiting=0)
        big = await a.admit(ANY, 5000, engine_state="ready")  # alone: allowed
        with pytest.raises(Overloaded):
            await a.admit(ANY, 10, engine_state="ready")
        big.release()
        await a.admit(ANY, 600, engine_state="ready")
        with pytest.raises(Overloaded):
            await a.admit(ANY, 600, engine_state="ready")

    asyncio.run(run())


def test_per_key_limits_and_budgets() -> None:
    async def run() -> None:
        a = admission(max_in_flight=100)
        rpm = Principal("rpm", KeyLimits(requests_per_minute=2))
        for _ in range(2):
            (await a.admit(rpm, 1, engine_state="ready")).release()
        with pytest.raises(Overloaded) as info:
            await a.admit(rpm, 1, engine_state="ready")
        assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
        tpm = Principal("tpm", KeyLimits(tokens_per_minute=100))
        await a.admit(tpm, 80, engine_state="ready")
        with pytest.raises(Overloaded):
            await a.admit(tpm, 30, engine_state="ready")
        conc = Principal("conc", KeyLimits(concurrent_requests=1))
        held = await a.admit(conc, 1, engine_state="ready")
        with pytest.raises(Overloaded):
            await a.admit(conc, 1, engine_state="ready")
        held.release()
        await a.admit(conc, 1, engine_state="ready")
        budget = Principal("budget", KeyLimits(token_budget=100, cost_budget=1.0))
        await a.admit(budget, 1, engine_state="ready", spent_tokens=99)
        with pytest.raises(PaymentRequired):
            await a.admit(budget, 1, engine_state="ready", spent_tokens=100)
        with pytest.raises(PaymentRequired):
            await a.admit(budget, 1, engine_state="ready", spent_cost=1.0)

    asyncio.run(run())


def test_token_window_slides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens older than a minute stop counting against tokens per minute, however many requests came since."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(admission_module, "time", SimpleNamespace(monotonic=lambda: clock.now))

    async def run() -> None:
        a = admission(max_in_flight=10_000)
        tpm = Principal("tpm", KeyLimits(tokens_per_minute=1000))
        for _ in range(900):
            (await a.admit(tpm, 1, engine_state="ready")).release()
        clock.now += 30
        (await a.admit(tpm, 100, engine_state="ready")).release()
        with pytest.raises(Overloaded):
            await a.admit(tpm, 1, engine_state="ready")
        clock.now += 31  # the 900 small ones are past the window; the 100 are not
        (await a.admit(tpm, 900, engine_state="ready")).release()
        with pytest.raises(Overloaded):
            await a.admit(tpm, 1, engine_state="ready")

    asyncio.run(run())


def test_engine_down_or_draining_is_503() -> None:
    async def run() -> None:
        a = admission()
        with pytest.raises(EngineUnavailable, match="Engine is restarting"):
            await a.admit(ANY, 1, engine_state="restarting")
        a.draining = True
        with pytest.raises(EngineUnavailable, match="shutting down") as info:
            await a.admit(ANY, 1, engine_state="ready")
        assert info.value.retry_after == 3

    asyncio.run(run())
