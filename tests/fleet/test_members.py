"""The fleet as the gateway sees it: ready while any engine takes requests, a state that says why not otherwise, the
smallest context of any, capacity counted in ready engines; refreshed on every change of a member."""

from __future__ import annotations

from server.engine.lifecycle import EngineState
from server.fleet.members import Fleet, Member, fleet_of
from server.workers.engine_view import EngineView


def view(state: EngineState, context: int | None = None, model: str = "m") -> EngineView:
    engine = EngineView()
    engine.state, engine.max_model_len, engine.served_model = state, context, model
    return engine


def test_ready_while_any_engine_takes_requests() -> None:
    a, b = Member("a", view(EngineState.READY, 4096)), Member("b", view(EngineState.RESTARTING))
    fleet = Fleet([a, b])
    assert fleet.ready and fleet.state is EngineState.READY and fleet.ready_count == 1
    a.eject("refused a connection")
    assert not fleet.ready and fleet.state is EngineState.UNREACHABLE  # up, but not answering: nearest to serving
    assert [m.describe()["state"] for m in fleet.members] == ["unreachable", "restarting"]
    assert a.describe()["out"] == "refused a connection"
    a.readmit()
    assert fleet.ready and fleet.ready_count == 1


def test_the_state_when_no_engine_takes_requests() -> None:
    a, b = Member("a", view(EngineState.READY)), Member("b", view(EngineState.READY))
    fleet = Fleet([a, b])
    assert fleet.ready_count == 2
    a.eject("gone")
    b.eject("gone")
    assert fleet.state is EngineState.UNREACHABLE  # ready, but not answering
    failed = Fleet([Member("a", view(EngineState.FAILED)), Member("b", view(EngineState.FAILED))])
    assert failed.state is EngineState.FAILED


def test_the_figures_follow_the_engines() -> None:
    small, large = view(EngineState.STARTING), view(EngineState.STARTING)
    fleet = Fleet([Member("a", small), Member("b", large)])
    assert fleet.max_model_len is None and fleet.state is EngineState.STARTING
    large.apply(
        {
            "state": "ready",
            "url": "",
            "api_key": "",
            "served_model": "m",
            "max_model_len": 32768,
            "images_per_prompt": 4,
            "restarts": 1,
            "last_failure": None,
        }
    )
    assert fleet.ready and fleet.max_model_len == 32768 and fleet.images_per_prompt == 4 and fleet.restarts == 1
    small.apply(
        {
            "state": "ready",
            "url": "",
            "api_key": "",
            "served_model": "m",
            "max_model_len": 4096,
            "images_per_prompt": None,
            "restarts": 0,
            "last_failure": None,
        }
    )
    assert fleet.max_model_len == 4096  # a request that fits goes to either
    assert fleet.ready_count == 2


def test_each_model_has_its_engines_and_its_own_context() -> None:
    a, b = (
        Member("a", view(EngineState.READY, 4096, "small-3.1")),
        Member("b", view(EngineState.READY, 2048, "small-3.2")),
    )
    c = Member("c", view(EngineState.READY, 8192, "small-3.1"))
    fleet = Fleet([a, b, c])
    assert fleet.serving == {"small-3.1": [a, c], "small-3.2": [b]}
    assert fleet.members_for("small-3.2") == [b] and fleet.members_for("magistral") == []
    assert fleet.contexts.get("small-3.1") == 4096 and fleet.contexts.get("small-3.2") == 2048
    assert b.describe()["model"] == "small-3.2"
    one_model = Fleet([Member("x", view(EngineState.READY, 4096)), Member("y", view(EngineState.READY, 4096))])
    assert one_model.members_for("anything") == one_model.members  # one model: no lookup on the request path


def test_leaving_rotation_tells_who_asked() -> None:
    member = Member("a", view(EngineState.READY))
    told: list[str] = []
    member.on_out.append(lambda m: told.append(m.name))
    member.eject("first")
    member.eject("again")  # already out: said once
    assert told == ["a"] and member.out == "first"


def test_one_engine_is_a_fleet_of_one() -> None:
    engine = view(EngineState.READY, 4096)
    fleet = fleet_of(engine)
    assert [m.engine for m in fleet.members] == [engine] and fleet.ready and fleet.max_model_len == 4096
    assert fleet_of(fleet) is fleet
