"""Admission bounds, per-key limits and budgets, on the real Admission object (no engine needed)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from server.access import admission as admission_module
from server.access.admission import Admission, Demand
from server.access.auth import KeyLimits, Principal
from server.engine.lifecycle import EngineState
from server.errors import EngineUnavailable, Overloaded, PaymentRequired

ANY = Principal(label=None, limits=KeyLimits())


class World:
    """What admission reads besides its own state: the engine's state and what each key has spent."""

    def __init__(self) -> None:
        self.state = EngineState.READY
        self.ready_count = 1  # engines that take requests: capacity is this many engines' worth
        self.spent: dict[str | None, tuple[int, float]] = {}
        self.before: dict[tuple[str | None, float], float] = {}  # cost before a budget window began
        self.asked_before: list[tuple[str | None, float]] = []

    async def spent_before(self, key_id: str | None, since: float) -> float:
        self.asked_before.append((key_id, since))
        return self.before.get((key_id, since), 0.0)


def admission(world: World | None = None, **kw: float) -> Admission:
    args: dict[str, float] = {
        "max_in_flight": 2,
        "max_waiting": 1,
        "max_tokens_in_flight": 1000,
        "queue_timeout_s": 0.3,
        "retry_after_s": 3,
    } | kw
    world = world or World()
    return Admission(
        **args,  # type: ignore[arg-type]
        engine=world,
        spent=lambda label: world.spent.get(label, (0, 0.0)),
        spent_before=world.spent_before,
    )


def test_bounds_queue_and_release() -> None:
    async def run() -> None:
        a = admission()
        t1 = await a.admit(ANY, Demand(100, 100))
        await a.admit(ANY, Demand(100, 100))
        waiter = asyncio.create_task(a.admit(ANY, Demand(100, 100)))  # waits for a slot
        await asyncio.sleep(0.05)
        assert a.waiting == 1
        with pytest.raises(Overloaded) as full:  # the queue is full too: refused without waiting
            await a.admit(ANY, Demand(100, 100))
        assert "server at capacity" in full.value.message and a.waiting == 1  # it never joined the queue
        assert full.value.retry_after == 3 and full.value.status == 429
        # Every engine full: OpenRouter's availability object says so, and when to try again.
        assert full.value.availability == {"code": "capacity_exhausted", "retryable": True, "retry_after": 3}
        t1.release()
        t1.release()  # idempotent
        t3 = await asyncio.wait_for(waiter, 1)
        assert a.in_flight == 2 and a.tokens_in_flight == 200
        t3.release()

    asyncio.run(run())


def test_waiting_gives_up_at_the_queue_timeout() -> None:
    async def run() -> None:
        a = admission(max_in_flight=1)
        await a.admit(ANY, Demand(1, 1))
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await a.admit(ANY, Demand(1, 1))
        assert time.monotonic() - started >= 0.3  # it waited its whole queue time (a hang is pytest-timeout's)
        assert a.waiting == 0

    asyncio.run(run())


def test_token_bound_admits_one_oversized_request_alone() -> None:
    async def run() -> None:
        a = admission(max_tokens_in_flight=1000, max_waiting=0)
        big = await a.admit(ANY, Demand(5000, 5000))  # alone: allowed
        with pytest.raises(Overloaded):
            await a.admit(ANY, Demand(10, 10))
        big.release()
        await a.admit(ANY, Demand(600, 600))
        with pytest.raises(Overloaded):
            await a.admit(ANY, Demand(600, 600))

    asyncio.run(run())


def test_per_key_limits_and_budgets() -> None:
    async def run() -> None:
        world = World()
        a = admission(world, max_in_flight=100)
        rpm = Principal("rpm", KeyLimits(requests_per_minute=2), key_id="id-rpm")
        for _ in range(2):
            (await a.admit(rpm, Demand(1, 1))).release()
        with pytest.raises(Overloaded) as info:
            await a.admit(rpm, Demand(1, 1))
        assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
        tpm = Principal("tpm", KeyLimits(tokens_per_minute=100), key_id="id-tpm")
        await a.admit(tpm, Demand(80, 80))
        with pytest.raises(Overloaded):
            await a.admit(tpm, Demand(30, 30))
        conc = Principal("conc", KeyLimits(concurrent_requests=1), key_id="id-conc")
        held = await a.admit(conc, Demand(1, 1))
        with pytest.raises(Overloaded):
            await a.admit(conc, Demand(1, 1))
        held.release()
        await a.admit(conc, Demand(1, 1))
        budget = Principal("budget", KeyLimits(token_budget=100, cost_budget=1.0), key_id="id-budget")
        world.spent["id-budget"] = (99, 0.0)
        await a.admit(budget, Demand(1, 1))
        world.spent["id-budget"] = (100, 0.0)
        with pytest.raises(PaymentRequired):
            await a.admit(budget, Demand(1, 1))
        world.spent["id-budget"] = (0, 1.0)
        with pytest.raises(PaymentRequired):
            await a.admit(budget, Demand(1, 1))

    asyncio.run(run())


def test_a_budget_that_resets_counts_only_what_was_spent_since_its_window_began() -> None:
    async def run() -> None:
        world = World()
        a = admission(world)
        daily = Principal("daily", KeyLimits(cost_budget=1.0, cost_budget_since=86400.0), key_id="id-daily")
        world.spent["id-daily"] = (0, 3.0)
        world.before[("id-daily", 86400.0)] = 2.5  # 0.5 of the 3.0 spent today
        (await a.admit(daily, Demand(1, 1, cost=0.4))).release()
        with pytest.raises(PaymentRequired):  # 0.5 + 0.6 is past the budget of 1.0
            await a.admit(daily, Demand(1, 1, cost=0.6))
        lifetime = Principal("lifetime", KeyLimits(cost_budget=1.0), key_id="id-lifetime")
        world.spent["id-lifetime"] = (0, 1.0)
        with pytest.raises(PaymentRequired):
            await a.admit(lifetime, Demand(1, 1))
        assert world.asked_before == [("id-daily", 86400.0)] * 2  # a budget without a window asks nothing

    asyncio.run(run())


def test_token_window_slides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens older than a minute stop counting against tokens per minute, however many requests came since."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(admission_module, "time", SimpleNamespace(monotonic=lambda: clock.now))

    async def run() -> None:
        a = admission(max_in_flight=10_000)
        tpm = Principal("tpm", KeyLimits(tokens_per_minute=1000), key_id="id-tpm")
        for _ in range(900):
            (await a.admit(tpm, Demand(1, 1))).release()
        clock.now += 30
        (await a.admit(tpm, Demand(100, 100))).release()
        with pytest.raises(Overloaded):
            await a.admit(tpm, Demand(1, 1))
        clock.now += 31  # the 900 small ones are past the window; the 100 are not
        (await a.admit(tpm, Demand(900, 900))).release()
        with pytest.raises(Overloaded):
            await a.admit(tpm, Demand(1, 1))

    asyncio.run(run())


def test_capacity_is_counted_in_ready_engines() -> None:
    async def run() -> None:
        world = World()
        world.ready_count = 2  # max_in_flight 2 is per engine: four fit
        a = admission(world, max_waiting=0)
        held = [await a.admit(ANY, Demand(100, 100)) for _ in range(4)]
        with pytest.raises(Overloaded, match="server at capacity"):
            await a.admit(ANY, Demand(100, 100))
        world.ready_count = 1  # one engine left: no more until the first two are done
        held[0].release()
        with pytest.raises(Overloaded, match="server at capacity"):
            await a.admit(ANY, Demand(100, 100))
        for ticket in held[1:]:
            ticket.release()
        (await a.admit(ANY, Demand(100, 100))).release()

    asyncio.run(run())


def test_engine_down_or_draining_is_503() -> None:
    async def run() -> None:
        world = World()
        a = admission(world)
        world.state = EngineState.RESTARTING
        with pytest.raises(EngineUnavailable, match="Engine is restarting") as down:
            await a.admit(ANY, Demand(1, 1))
        assert down.value.availability == {"code": "temporarily_unavailable", "retryable": True, "retry_after": 3}
        world.state = EngineState.READY
        a.draining = True
        with pytest.raises(EngineUnavailable, match="shutting down") as info:
            await a.admit(ANY, Demand(1, 1))
        assert info.value.retry_after == 3

    asyncio.run(run())


def test_keys_without_per_key_limits_are_not_counted() -> None:
    """Per-key windows cost memory per request; a key with nothing to count (or no keys at all) keeps none."""

    async def run() -> None:
        a = admission(max_in_flight=10_000)
        unlimited = Principal("unlimited", KeyLimits(), key_id="id-unlimited")
        for principal in (ANY, unlimited):
            for _ in range(100):
                (await a.admit(principal, Demand(1, 1))).release()
        assert a._keys == {} and a.in_flight == 0
        counted = Principal("rpm", KeyLimits(requests_per_minute=1000), key_id="id-rpm")
        (await a.admit(counted, Demand(1, 1))).release()
        assert a._keys["id-rpm"].in_flight == 0 and len(a._keys["id-rpm"].requests) == 1

    asyncio.run(run())


def test_a_key_is_held_to_the_worst_case_of_what_it_has_in_flight() -> None:
    """Concurrent requests without max_tokens could each run to the end of the context: together they may not take a
    key past its budget, and a request that may need more than the key has left is refused up front (402)."""

    async def run() -> None:
        world = World()
        a = admission(world, max_in_flight=100)
        budget = Principal("budget", KeyLimits(token_budget=1000), key_id="id-budget")
        first = await a.admit(budget, Demand(100, 600))
        with pytest.raises(PaymentRequired) as info:
            await a.admit(budget, Demand(100, 600))  # 600 + 600 could pass 1000
        assert info.value.status == 402
        assert str(info.value) == (
            "This request may use up to 600 tokens, but key 'budget' has 400 tokens left of its budget: "
            "send a smaller max_tokens"
        )
        world.spent["id-budget"] = (50, 0.0)  # the first one's record: it used 50
        first.release(50)
        second = await a.admit(budget, Demand(100, 600))
        second.release(100)
        cost = Principal("cost", KeyLimits(cost_budget=1.0), key_id="id-cost")
        held = await a.admit(cost, Demand(10, 10, cost=0.75))
        with pytest.raises(PaymentRequired) as info:
            await a.admit(cost, Demand(10, 10, cost=0.5))
        assert str(info.value) == (
            "This request may cost up to $0.500000, but key 'cost' has $0.250000 left of its budget: "
            "send a smaller max_tokens"
        )
        held.release(10)
        (await a.admit(cost, Demand(10, 10, cost=0.5))).release(10)

    asyncio.run(run())


def test_tokens_per_minute_count_worst_cases_then_what_was_used() -> None:
    async def run() -> None:
        a = admission(max_in_flight=100)
        tpm = Principal("tpm", KeyLimits(tokens_per_minute=1000), key_id="id-tpm")
        first = await a.admit(tpm, Demand(100, 900))
        with pytest.raises(Overloaded):  # the first may still use 900
            await a.admit(tpm, Demand(100, 200))
        first.release(used_tokens=100)  # it used 100: the window now holds 100
        (await a.admit(tpm, Demand(100, 800))).release()  # used unknown: its 800 stay counted
        with pytest.raises(Overloaded):
            await a.admit(tpm, Demand(10, 200))

    asyncio.run(run())


def test_requests_served_elsewhere_keep_the_keys_limits_but_take_no_capacity() -> None:
    async def run() -> None:
        world = World()
        world.state = EngineState.RESTARTING  # the hosted upstream does not need the local engine
        a = admission(world)
        conc = Principal("conc", KeyLimits(concurrent_requests=1), key_id="id-conc")
        held = await a.admit(conc, Demand(10, 10), capacity=False)
        assert a.in_flight == 0 and a.tokens_in_flight == 0
        with pytest.raises(Overloaded) as info:
            await a.admit(conc, Demand(10, 10), capacity=False)
        assert info.value.metadata == {"limit_source": "key"}  # the key's own limit: nowhere else may serve it
        assert info.value.availability is None  # not the engines' capacity: nothing to say of it
        held.release()
        (await a.admit(conc, Demand(10, 10), capacity=False)).release()

    asyncio.run(run())
