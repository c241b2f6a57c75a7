"""OpenRouter's response cache and presets against the real engine, on a gateway whose operator enabled the cache and
defined presets: an identical request from the same key replays the stored answer (sent or streamed) under a new
generation id, costs nothing and is recorded as a hit; another key never gets it; `-Clear` and `-TTL` work; off
unless the operator enables it. A preset's system prompt and parameters apply, and it can turn the cache on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from server.access.auth import hash_key, new_key
from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import ENGINE_KEY, Gateway, attached_gateway
from tests.support.helpers import bearer

pytestmark = pytest.mark.engine

KEYS = {label: new_key() for label in ("a", "b")}
CACHE = {"X-OpenRouter-Cache": "true"}
SYSTEM = "You are a terse assistant who answers every question in exactly one short sentence."
PRESETS = {
    "terse": {"system_prompt": SYSTEM, "parameters": {"max_tokens": 3}},
    "remembered": {"parameters": {"max_tokens": 4}, "cache_enabled": True, "cache_ttl_seconds": 60},
}


@pytest.fixture(scope="module")
def cached(gateway: Gateway) -> Iterator[Gateway]:
    specs = [{"label": label, "sha256": hash_key(key)} for label, key in KEYS.items()]
    env = {
        "MISTRAL_LOCAL_API_KEYS": json.dumps(specs),
        "MISTRAL_LOCAL_RESPONSE_CACHE": "true",
        "MISTRAL_LOCAL_PRESETS": json.dumps(PRESETS),
    }
    with attached_gateway("gateway-cache", gateway, ENGINE_KEY, env, headers=auth("a")) as gw:
        yield gw


def auth(label: str) -> dict[str, str]:
    return bearer(KEYS[label])


def body(prompt: str, **more: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "temperature": 1.0, **more}


def chat(gw: Gateway, label: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    url = f"{gw.url}/api/v1/chat/completions"
    return httpx.post(url, headers=auth(label) | (headers or {}), json=payload, timeout=120)


def record(gw: Gateway, label: str, gen_id: str) -> dict[str, Any]:
    r = httpx.get(f"{gw.url}/api/v1/generation", params={"id": gen_id}, headers=auth(label))
    data: dict[str, Any] = r.json()["data"]
    return data


def test_a_hit_replays_the_answer_at_no_cost(cached: Gateway) -> None:
    payload = body("Name a colour.")
    first = chat(cached, "a", payload, CACHE)
    assert first.headers["x-openrouter-cache-status"] == "MISS" and first.headers["x-openrouter-cache-ttl"] == "300"
    hit = chat(cached, "a", payload, CACHE)
    assert hit.headers["x-openrouter-cache-status"] == "HIT"
    one, two = first.json(), hit.json()
    assert two["choices"][0]["message"] == one["choices"][0]["message"]
    assert two["id"] != one["id"] and hit.headers["x-generation-id"] == two["id"]
    assert two["usage"]["total_tokens"] == 0 and two["usage"]["cost"] == 0
    replayed = record(cached, "a", two["id"])
    assert replayed["response_cache_source_id"] == one["id"]
    assert replayed["tokens_prompt"] == replayed["tokens_completion"] == 0
    assert "response_cache_source_id" not in record(cached, "a", one["id"])
    # OpenRouter's 2026 header names the generation replayed, on hits only (read through the OpenAI SDK's raw
    # response, as a client that wants headers reads them).
    assert hit.headers["x-openrouter-cache-source-id"] == one["id"]
    assert "x-openrouter-cache-source-id" not in first.headers
    asked: Any = {"model": OPENROUTER_MODEL_ID, **body("Name a shape."), "extra_headers": CACHE}
    with openai.OpenAI(base_url=f"{cached.url}/api/v1", api_key=KEYS["a"], max_retries=0, timeout=120) as sdk:
        miss = sdk.chat.completions.with_raw_response.create(**asked)
        again = sdk.chat.completions.with_raw_response.create(**asked)
    assert "x-openrouter-cache-source-id" not in miss.headers
    assert again.headers["x-openrouter-cache-source-id"] == miss.parse().id != again.parse().id


def test_another_key_never_gets_a_keys_entry(cached: Gateway) -> None:
    payload = body("Name a fruit.")
    assert chat(cached, "a", payload, CACHE).headers["x-openrouter-cache-status"] == "MISS"
    assert chat(cached, "b", payload, CACHE).headers["x-openrouter-cache-status"] == "MISS"
    assert chat(cached, "b", payload, CACHE).headers["x-openrouter-cache-status"] == "HIT"


def test_a_stream_is_replayed_as_its_chunks(cached: Gateway) -> None:
    def stream() -> tuple[str, list[dict[str, Any]], str]:
        url = f"{cached.url}/api/v1/chat/completions"
        with httpx.stream("POST", url, headers=auth("a") | CACHE, json=body("Count.", stream=True), timeout=120) as r:
            chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
            return r.headers["x-openrouter-cache-status"], chunks, r.headers["x-generation-id"]

    status, first, _ = stream()
    again, replayed, gen_id = stream()
    assert (status, again) == ("MISS", "HIT")
    text = [
        "".join(c["delta"].get("content") or "" for chunk in x for c in chunk["choices"]) for x in (first, replayed)
    ]
    assert text[0] == text[1] and text[0]
    assert {c["id"] for c in replayed} == {gen_id} != {c["id"] for c in first}
    assert replayed[-1]["usage"]["total_tokens"] == 0


def test_clear_and_ttl(cached: Gateway) -> None:
    payload = body("Name a tree.")
    assert chat(cached, "a", payload, CACHE | {"X-OpenRouter-Cache-TTL": "1"}).headers["x-openrouter-cache-ttl"] == "1"
    time.sleep(1.5)  # past the TTL: the entry is gone
    assert chat(cached, "a", payload, CACHE).headers["x-openrouter-cache-status"] == "MISS"
    assert chat(cached, "a", payload, CACHE).headers["x-openrouter-cache-status"] == "HIT"
    cleared = chat(cached, "a", payload, CACHE | {"X-OpenRouter-Cache-Clear": "true"})
    assert cleared.headers["x-openrouter-cache-status"] == "MISS"
    bad = chat(cached, "a", payload, CACHE | {"X-OpenRouter-Cache-TTL": "0"})
    assert bad.status_code == 400 and "X-OpenRouter-Cache-TTL" in bad.json()["error"]["message"]


def test_without_the_header_or_the_operators_switch_nothing_is_cached(cached: Gateway, gateway: Gateway) -> None:
    payload = body("Name a river.")
    assert "x-openrouter-cache-status" not in chat(cached, "a", payload).headers
    off = httpx.post(f"{gateway.url}/api/v1/chat/completions", headers=CACHE, json=payload, timeout=120)
    assert off.status_code == 200 and "x-openrouter-cache-status" not in off.headers


def test_a_presets_system_prompt_and_parameters_apply(cached: Gateway) -> None:
    plain = chat(cached, "a", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).json()
    preset = chat(cached, "a", {"model": "@preset/terse", "messages": [{"role": "user", "content": "hi"}]})
    assert preset.status_code == 200, preset.text
    answer = preset.json()
    assert answer["usage"]["completion_tokens"] == 3  # the preset's max_tokens
    assert answer["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 10  # its system prompt came first
    assert record(cached, "a", answer["id"])["preset_id"] == "terse"
    unknown = chat(cached, "a", {"model": "@preset/nope", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 400 and unknown.json()["error"]["message"] == "Preset 'nope' not found"


def test_a_preset_can_turn_the_cache_on(cached: Gateway) -> None:
    payload = {
        "model": "mistralai/mistral-small-3.1-24b-instruct@preset/remembered",
        "messages": [{"role": "user", "content": "Name a bird."}],
    }
    first = chat(cached, "b", payload)
    assert first.headers["x-openrouter-cache-status"] == "MISS" and first.headers["x-openrouter-cache-ttl"] == "60"
    assert first.json()["usage"]["completion_tokens"] == 4
    assert chat(cached, "b", payload).headers["x-openrouter-cache-status"] == "HIT"
