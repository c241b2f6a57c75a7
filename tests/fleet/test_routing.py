"""Which engine a request goes to: rendezvous order, session pins and their expiry, the load spill, the other
policies, and the route key a request's conversation gives."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from server.engine.lifecycle import EngineState
from server.fleet import routing
from server.fleet.load import Load
from server.fleet.members import Fleet, Member
from server.fleet.routing import Conversation, Router, rank
from server.workers.engine_view import EngineView


def member(name: str) -> Member:
    view = EngineView()
    view.state = EngineState.READY
    return Member(name, view)


def fleet(*names: str) -> list[Member]:
    members = [member(n) for n in names]
    Fleet(members)
    return members


def test_rendezvous_moves_only_the_sessions_of_an_engine_that_leaves() -> None:
    a, b, c = fleet("a", "b", "c")
    keys = [f"session-{i}" for i in range(3000)]
    first = {k: rank(k, [a, b, c])[0].name for k in keys}
    spread = Counter(first.values())
    assert all(800 < n < 1200 for n in spread.values()), spread  # about a third each
    without_c = {k: rank(k, [a, b])[0].name for k in keys}
    assert all(without_c[k] == first[k] for k in keys if first[k] != "c")  # nobody else moved
    assert {without_c[k] for k in keys if first[k] == "c"} == {"a", "b"}  # c's sessions spread over the rest


def test_a_session_stays_pinned_even_when_its_engine_grows_busy() -> None:
    members = fleet("a", "b")
    router = Router()
    first = router.order("s1", members)[0]
    first.load = Load(running=30)  # far busier than the other now
    assert router.order("s1", members)[0] is first  # its prefix is there: it stays
    # A new session whose first choice is that engine goes to the other one.
    new = next(k for k in (f"n{i}" for i in range(100)) if rank(k, members)[0] is first)
    assert router.order(new, members)[0] is not first


def test_a_small_difference_in_load_does_not_move_new_sessions() -> None:
    members = fleet("a", "b")
    router = Router()
    busy = members[0]
    busy.in_flight = int(routing.SPILL_MARGIN)  # busier, but not well above
    new = next(k for k in (f"n{i}" for i in range(100)) if rank(k, members)[0] is busy)
    assert router.order(new, members)[0] is busy


def test_a_pin_expires_after_ten_minutes_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    members = fleet("a", "b")
    router = Router()
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    home = rank("s", members)[0]
    other = next(m for m in members if m is not home)
    home.out = "down for a moment"
    assert router.order("s", members)[0] is other  # moved, and pinned there
    home.out = None
    now[0] += 599
    assert router.order("s", members)[0] is other  # back within the window: stays where its prefix now is
    now[0] += 601
    assert router.order("s", members)[0] is home  # idle past OpenRouter's 10 minutes: rendezvous decides again


def test_unusable_engines_are_never_chosen() -> None:
    a, b = fleet("a", "b")
    b.out = "refused a connection"
    assert Router().order("x", [a, b]) == [a]
    assert isinstance(a.engine, EngineView)
    a.engine.state = EngineState.RESTARTING
    assert Router().order("x", [a, b]) == []


def test_least_loaded_and_round_robin() -> None:
    a, b, c = fleet("a", "b", "c")
    b.in_flight, a.load = 1, Load(waiting=3)
    assert [m.name for m in Router("least-loaded").order("x", [a, b, c])] == ["c", "b", "a"]
    turns = Router("round-robin")
    assert [turns.order("same", [a, b, c])[0].name for _ in range(4)] == ["a", "b", "c", "a"]
    assert Router().order(None, [a, b, c])[0] is c  # no conversation: the least busy


def test_the_route_key_of_a_conversation() -> None:
    def route(key: str | None, lead: object, **hints: str | None) -> str:
        empty: dict[str, str | None] = {"session_id": None, "prompt_cache_key": None, "user": None}
        return Conversation(key, empty | hints, lead).route()

    first_turn = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert route("k1", first_turn) == route("k1", first_turn)  # later turns repeat the leading messages
    assert route("k1", first_turn) != route("k2", first_turn)  # another key: another choice
    assert route("k1", first_turn, session_id="s") == route("k1", ["other"], session_id="s")  # the hint wins
    assert route("k1", [], session_id="s") != route("k2", [], session_id="s")
    assert route("k1", [], session_id="s", user="u") == route("k1", [], session_id="s")  # the first hint present
    assert route("k1", [], user="u") != route("k1", [], prompt_cache_key="u")  # a hint's kind counts
