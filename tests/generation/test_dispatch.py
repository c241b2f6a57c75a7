"""The front door (server/generation/dispatch.py) on its own: a preset applied once to the request every path reads,
the response cache answering an identical request (recorded at no cost, under the stored generation's source id),
OpenRouter's model order walked on the failures it falls back on and not on a key's own limits. The local engine is
a stand-in that answers or fails as told and keeps what it was asked: the engine path has its own tests."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fastapi.responses import JSONResponse, Response

from server.access.auth import KeyLimits, Principal
from server.catalog import Catalog
from server.engine.lifecycle import EngineState
from server.errors import EngineUnavailable, GatewayError, Overloaded
from server.fleet.members import Fleet, Member
from server.generation.dispatch import Dispatch, falls_back, model_order
from server.generation.recorder import Recorder
from server.schemas.preset import Preset
from server.schemas.record import GenerationRecord
from server.schemas.request import ChatRequest
from server.settings import OPENROUTER_MODEL_ID, Settings
from server.telemetry.metrics import Metrics
from server.workers.engine_view import EngineView

SMALL_32 = "mistralai/mistral-small-3.2-24b-instruct"
KEY = Principal("team", KeyLimits(), key_id="id-team")


class Engines:
    """The local path: answers each model as told (a GatewayError fails it), and keeps every request it got."""

    def __init__(self, failures: dict[str, GatewayError] | None = None) -> None:
        self.failures = failures or {}
        self.asked: list[tuple[ChatRequest, str, list[dict[str, Any]]]] = []

    async def chat(
        self, req: ChatRequest, principal: Principal, model: str, attempts: list[dict[str, Any]] | None = None
    ) -> Response:
        self.asked.append((req, model, list(attempts or [])))
        if model in self.failures:
            raise self.failures[model]
        gen_id = f"gen-{len(self.asked)}"
        body = {"id": gen_id, "model": model, "choices": [{"finish_reason": "stop"}]}
        return JSONResponse(body, headers={"X-Generation-Id": gen_id})

    def context(self, model: str) -> int:
        return 8192


class Kept:
    def __init__(self) -> None:
        self.records: list[GenerationRecord] = []

    def add(self, record: GenerationRecord) -> None:
        self.records.append(record)


def fleet(*models: str) -> Fleet:
    views = []
    for model in models:
        view = EngineView()
        view.state, view.served_model, view.max_model_len = EngineState.READY, model, 8192
        views.append(view)
    return Fleet([Member(f"e{i}", view) for i, view in enumerate(views)])


def dispatch(engines: Engines, kept: Kept, *models: str, **settings: Any) -> Dispatch:
    config = Settings(**settings)
    catalog = Catalog(config, fleet(*(models or (OPENROUTER_MODEL_ID,))))
    recorder = Recorder(kept, Metrics())  # type: ignore[arg-type]
    return Dispatch(config, engines, catalog, recorder, None, None)  # type: ignore[arg-type]


def chat(d: Dispatch, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **body})
    return asyncio.run(d.chat(req, {}, headers or {}, KEY))


def test_a_preset_is_applied_once_to_the_request_the_engine_gets() -> None:
    engines, kept = Engines(), Kept()
    preset = Preset(system_prompt="Be brief.", parameters={"temperature": 0.2, "max_tokens": 9})
    d = dispatch(engines, kept, presets={"brief": preset})
    chat(d, {"model": "@preset/brief", "max_tokens": 3})
    ((req, model, _),) = engines.asked
    assert model == OPENROUTER_MODEL_ID
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.temperature == 0.2 and req.max_tokens == 3  # the request's own setting wins over the preset's
    assert (req.model_extra or {}).get("preset") == "brief"


def test_the_cache_answers_an_identical_request_at_no_cost_under_its_source() -> None:
    engines, kept = Engines(), Kept()
    preset = Preset(cache_enabled=True, cache_ttl_seconds=60)  # the preset asks: no header needed
    d = dispatch(engines, kept, presets={"cached": preset}, response_cache=True)
    first = chat(d, {"model": "@preset/cached"})
    again = chat(d, {"model": "@preset/cached"})
    assert len(engines.asked) == 1
    assert first.headers["x-openrouter-cache-status"] == "MISS" and again.headers["x-openrouter-cache-status"] == "HIT"
    assert again.headers["x-openrouter-cache-source-id"] == "gen-1"
    replayed = orjson.loads(bytes(again.body))
    assert replayed["id"] == again.headers["x-generation-id"] != "gen-1"
    (hit,) = kept.records  # the engine's own generation is the stand-in's to record
    assert hit.cache_source_id == "gen-1" and hit.cost == 0
    chat(d, {"model": "@preset/cached"}, {"x-openrouter-cache": "false"})  # the client's header wins
    assert len(engines.asked) == 2


def test_the_model_order_falls_back_on_an_engine_failure_with_its_attempt_recorded() -> None:
    down = EngineUnavailable("Engine is restarting", retry_after=1)
    engines, kept = Engines({OPENROUTER_MODEL_ID: down}), Kept()
    d = dispatch(engines, kept, OPENROUTER_MODEL_ID, SMALL_32)
    answer = chat(d, {"model": OPENROUTER_MODEL_ID, "models": [SMALL_32]})
    assert orjson.loads(bytes(answer.body))["model"] == SMALL_32
    (_, first, _), (_, second, tried) = engines.asked
    assert (first, second) == (OPENROUTER_MODEL_ID, SMALL_32)
    assert tried == [{"model": OPENROUTER_MODEL_ID, "provider_name": "Local", "status": 503}]


def test_a_keys_own_limit_is_the_answer_wherever_the_request_could_go() -> None:
    limited = Overloaded("Rate limit exceeded", metadata={"limit_source": "key"})
    engines, kept = Engines({OPENROUTER_MODEL_ID: limited}), Kept()
    d = dispatch(engines, kept, OPENROUTER_MODEL_ID, SMALL_32)
    with pytest.raises(Overloaded):
        chat(d, {"model": OPENROUTER_MODEL_ID, "models": [SMALL_32]})
    assert [model for _, model, _ in engines.asked] == [OPENROUTER_MODEL_ID]
    assert not falls_back(limited) and falls_back(Overloaded("every engine is full"))


def test_the_model_order_is_model_then_models() -> None:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], "models": ["b", "c"]})
    assert model_order(req) == ["b", "c"]
    assert model_order(req.model_copy(update={"model": "a"})) == ["a", "b", "c"]
