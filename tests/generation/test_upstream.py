"""Routing to a hosted upstream under the privacy guard, against an OpenRouter stand-in on loopback that records
what it receives, with the real engine (or a dead one) behind the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.access.auth import KeyLimits, KeySpec, hash_key
from server.app import create_app
from server.engine.attached import AttachedEngine
from server.schemas.preset import Preset
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID, Settings
from tests.support.fake_upstream import PROVIDER, SLOW_S, USAGE, Hosted, serve_hosted
from tests.support.gateway_process import ENGINE_KEY, Gateway
from tests.support.helpers import bearer
from tests.support.scratch import scratch_dir

pytestmark = pytest.mark.engine

KEYS = {name: f"sk-ml-{name}-upstream-01" for name in ("alice", "private", "bob", "once")}
SPECS = (
    KeySpec(label="alice", sha256=hash_key(KEYS["alice"])),
    KeySpec(label="private", sha256=hash_key(KEYS["private"]), local_only=True),
    KeySpec(label="bob", sha256=hash_key(KEYS["bob"])),
    KeySpec(label="once", sha256=hash_key(KEYS["once"]), limits=KeyLimits(requests_per_minute=1)),
)
UPSTREAM_KEY = "sk-or-v1-upstream-secret"
ATTRIBUTION = {"HTTP-Referer": "https://example.org/app", "X-Title": "Example App"}


@pytest.fixture
def hosted() -> Iterator[Hosted]:
    with serve_hosted() as h:
        yield h


@pytest.fixture
def gateway_for(gateway: Gateway, hosted: Hosted) -> Iterator[Any]:
    """Build an in-process gateway attached to the session's engine (or to nothing), with upstream settings."""
    clients: list[TestClient] = []

    def build(*, engine_alive: bool = True, **overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "cache_dir": scratch_dir("up-"),
            "api_keys": SPECS,
            "upstream_url": hosted.url,
            "upstream_api_key": UPSTREAM_KEY,
            "upstream_models": ("*",),
        } | overrides
        settings = Settings(**values)
        port = gateway.engine_port if engine_alive else free_port()
        engine = AttachedEngine(f"http://127.0.0.1:{port}", ENGINE_KEY, settings.model_id, start_timeout_s=60)
        client = TestClient(create_app(settings, engine), base_url="http://127.0.0.1").__enter__()
        clients.append(client)
        if engine_alive:
            deadline = time.monotonic() + 60
            while client.get("/health/ready", headers=auth("alice")).status_code != 200:
                assert time.monotonic() < deadline, "the attached engine did not become ready"
                time.sleep(0.2)
        return client

    yield build
    for c in clients:
        c.__exit__(None, None, None)


def auth(label: str) -> dict[str, str]:
    return bearer(KEYS[label])


def chat(client: TestClient, model: str, label: str = "alice", **body: Any) -> Any:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4} | body
    return client.post("/api/v1/chat/completions", json=payload, headers=auth(label) | ATTRIBUTION)


def test_local_only_by_default(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for(upstream_url=None)
    r = chat(client, "hosted/ok")
    invalid = {"code": 400, "message": "hosted/ok is not a valid model ID"}
    assert r.json() == {"error": invalid | {"metadata": {"error_type": "invalid_request"}}}
    assert chat(client, OPENROUTER_MODEL_ID).status_code == 200
    assert hosted.received == []


def test_unserved_model_goes_upstream_with_the_clients_fields_and_not_its_key(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for()
    extra: dict[str, Any] = {
        "provider": {"sort": "price"},
        "transforms": ["middle-out"],
        "user": "u-1",
        "x_custom": [1],
    }
    r = chat(client, "hosted/ok", models=["hosted/ok"], temperature=0.3, **extra)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["provider"], answer["model"]) == (PROVIDER, "hosted/ok")
    (got,) = hosted.received
    assert got.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert KEYS["alice"] not in json.dumps(got.headers) + json.dumps(got.body)
    assert (got.headers["http-referer"], got.headers["x-title"]) == (
        ATTRIBUTION["HTTP-Referer"],
        ATTRIBUTION["X-Title"],
    )
    sent = {"model": "hosted/ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0.3}
    assert got.body == sent | extra  # as the client sent it; `models` is walked by the gateway
    record = client.get(f"/api/v1/generation?id={answer['id']}", headers=auth("alice")).json()["data"]
    assert (record["provider_name"], record["tokens_prompt"], record["total_cost"]) == (PROVIDER, 7, USAGE["cost"])


def test_a_presets_settings_reach_the_upstream(gateway_for: Any, hosted: Hosted) -> None:
    """A preset naming a hosted model: its system prompt, parameters and tools are in what the upstream gets, under
    the request's own (they were applied to the local path only), and its name is not (the upstream would look it
    up among its own presets)."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    preset = Preset(model="hosted/ok", system_prompt="Answer briefly.", parameters={"temperature": 0.2, "top_p": 0.5},
                    tools=[tool])  # fmt: skip
    client = gateway_for(presets={"up": preset})
    r = chat(client, "@preset/up", top_p=0.9)
    assert r.status_code == 200, r.text
    (got,) = hosted.received
    assert got.body["model"] == "hosted/ok" and "preset" not in got.body
    assert got.body["messages"] == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hi"}]
    assert (got.body["temperature"], got.body["top_p"], got.body["tools"]) == (0.2, 0.9, [tool])


@pytest.mark.parametrize(
    ("label", "settings", "body"),
    [
        ("alice", {"local_only": True}, {}),
        ("private", {}, {}),
        ("bob", {"upstream_keys": ("alice",)}, {}),
        ("alice", {"upstream_models": ("hosted/other",)}, {}),
        ("alice", {}, {"provider": {"allow_fallbacks": False}}),
        ("alice", {}, {"provider": {"data_collection": "deny"}}),
        ("alice", {}, {"provider": {"zdr": True}}),
    ],
    ids=[
        "operator-local-only",
        "key-local-only",
        "key-not-allowed",
        "model-not-allowed",
        "no-fallbacks",
        "deny",
        "zdr",
    ],
)
def test_privacy_rules_keep_everything_local(
    gateway_for: Any, hosted: Hosted, label: str, settings: dict[str, Any], body: dict[str, Any]
) -> None:
    client = gateway_for(**settings)
    r = chat(client, "hosted/ok", label=label, **body)
    assert r.json()["error"]["message"] == "hosted/ok is not a valid model ID"  # as with no upstream at all
    # The engine being down is no exception: the local 503 stays local.
    down = gateway_for(engine_alive=False, **settings)
    assert chat(down, OPENROUTER_MODEL_ID, label=label, **body).status_code == 503
    assert hosted.received == []


def test_a_local_failure_spills_upstream_and_every_attempt_is_recorded(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for(engine_alive=False)
    r = chat(client, OPENROUTER_MODEL_ID)
    assert r.status_code == 200 and r.json()["provider"] == PROVIDER
    assert [g.body["model"] for g in hosted.received] == [OPENROUTER_MODEL_ID]
    record = client.get(f"/api/v1/generation?id={r.json()['id']}", headers=auth("alice")).json()["data"]
    assert [(a["provider_name"], a["status"]) for a in record["provider_responses"]] == [
        ("Local", 503),
        (PROVIDER, 200),
    ]


def test_models_fallback_in_order(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for()
    r = chat(client, "hosted/missing", models=["hosted/down", OPENROUTER_MODEL_ID, "hosted/ok"])
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["provider"]) == (OPENROUTER_MODEL_ID, "Local")
    assert [g.body["model"] for g in hosted.received] == ["hosted/missing", "hosted/down"]
    record = client.get(f"/api/v1/generation?id={r.json()['id']}", headers=auth("alice")).json()["data"]
    tried = [(a["model"], a["status"]) for a in record["provider_responses"]]
    assert tried == [("hosted/missing", 404), ("hosted/down", 503), (OPENROUTER_MODEL_ID, 200)]
    busy_then_ok = chat(client, "hosted/busy", models=["hosted/ok"])
    assert busy_then_ok.json()["model"] == "hosted/ok"


def test_upstream_errors_pass_through_bounded(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for(upstream_timeout_s=SLOW_S / 3)
    pay = chat(client, "hosted/pay")
    assert (pay.status_code, pay.json()) == (402, {"error": {"code": 402, "message": "Insufficient credits"}})
    slow = chat(client, "hosted/slow")
    assert slow.status_code == 408  # the gateway's clock, not the upstream's answer (a 200 after SLOW_S)
    unreachable = gateway_for(upstream_url=f"http://127.0.0.1:{free_port()}/api/v1")
    gone = chat(unreachable, "hosted/ok")
    assert gone.status_code == 502 and gone.json()["error"]["message"].startswith("Upstream unreachable")


def sse_data(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_streams_pass_through_and_a_broken_one_ends_with_an_error_never_a_retry(
    gateway_for: Any, hosted: Hosted
) -> None:
    client = gateway_for()
    ok = chat(client, "hosted/ok", stream=True)
    events = sse_data(ok.text)
    assert "".join(e["choices"][0]["delta"]["content"] for e in events if e["choices"]) == "Hello from hosted"
    assert events[-1]["usage"] == USAGE and ok.text.rstrip().endswith("data: [DONE]")
    broken = chat(client, "hosted/broken", stream=True, models=["hosted/ok"])
    events = sse_data(broken.text)
    assert "".join(e["choices"][0]["delta"]["content"] for e in events if e["choices"]) == "Hello from"
    assert events[-1]["error"]["code"] == 502 and broken.text.rstrip().endswith("data: [DONE]")
    assert [g.body["model"] for g in hosted.received] == ["hosted/ok", "hosted/broken"]  # no second try


def test_a_keys_own_rate_limit_is_not_spilled_to_the_upstream(gateway_for: Any, hosted: Hosted) -> None:
    """Its 429 says the key is over its own limit: a paid provider must not serve it instead."""
    client = gateway_for()
    assert chat(client, OPENROUTER_MODEL_ID, label="once").status_code == 200
    r = chat(client, OPENROUTER_MODEL_ID, label="once", models=[OPENROUTER_MODEL_ID, "hosted/ok"])
    assert r.status_code == 429
    assert r.json()["error"]["metadata"] == {"limit_source": "key", "error_type": "rate_limit_exceeded"}
    assert hosted.received == []


def test_a_keys_limits_hold_for_upstream_requests_too(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for()
    assert chat(client, "hosted/ok", label="once").status_code == 200
    assert chat(client, "hosted/ok", label="once").status_code == 429
    assert len(hosted.received) == 1


def test_an_upstream_answer_without_an_id_gets_an_unguessable_one(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for()
    r = chat(client, "hosted/anonymous")
    assert r.status_code == 200
    record_id = r.headers["x-generation-id"]
    assert record_id.startswith("gen-") and len(record_id) >= 20
    mine = client.get(f"/api/v1/generation?id={record_id}", headers=auth("alice"))
    assert mine.status_code == 200
    assert client.get(f"/api/v1/generation?id={record_id}", headers=auth("bob")).status_code == 404


def test_non_ascii_attribution_headers_reach_the_upstream_as_sent(gateway_for: Any, hosted: Hosted) -> None:
    client = gateway_for()
    title = "Café ☕ Ünïcode".encode()
    r = client.post(
        "/api/v1/chat/completions",
        json={"model": "hosted/ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers=[(b"authorization", f"Bearer {KEYS['alice']}".encode()), (b"x-title", title)],
    )
    assert r.status_code == 200, r.text
    (got,) = hosted.received
    assert got.headers["x-title"].encode("latin-1") == title
