"""Keys, per-key limits and budgets, and a burst of 10x capacity, through a gateway attached to the real engine."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, errors

from server.access.auth import hash_key
from tests.support.gateway_process import ENGINE_KEY, Gateway, attached_gateway
from tests.support.helpers import SDK_TIMEOUT_MS, bearer
from tests.support.image_server import SEEN_HEADERS

pytestmark = pytest.mark.engine

KEYS = {
    name: f"sk-ml-{name}-0123456789"
    for name in ("alice", "budget", "rpm", "off", "tpm", "lean", "once", "ops", "quitter", "tenant1", "tenant2")
}
SPECS = [
    {"label": "alice", "sha256": hash_key(KEYS["alice"])},
    {"label": "budget", "sha256": hash_key(KEYS["budget"]), "limits": {"token_budget": 20}},
    {"label": "rpm", "sha256": hash_key(KEYS["rpm"]), "limits": {"requests_per_minute": 2}},
    {"label": "off", "sha256": hash_key(KEYS["off"]), "disabled": True},
    {"label": "tpm", "sha256": hash_key(KEYS["tpm"]), "limits": {"tokens_per_minute": 2500}},
    {"label": "lean", "sha256": hash_key(KEYS["lean"]), "limits": {"token_budget": 1000}},
    {"label": "once", "sha256": hash_key(KEYS["once"]), "limits": {"requests_per_minute": 1}},
    {"label": "ops", "sha256": hash_key(KEYS["ops"]), "management": True},
    {"label": "quitter", "sha256": hash_key(KEYS["quitter"]), "limits": {"token_budget": 1_000_000}},
    {"label": "tenant1", "sha256": hash_key(KEYS["tenant1"])},
    {"label": "tenant2", "sha256": hash_key(KEYS["tenant2"])},
]
CAPACITY = 4  # 2 in flight + 2 waiting
QUEUE_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def guarded(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        "MISTRAL_LOCAL_API_KEYS": json.dumps(SPECS),
        "MISTRAL_LOCAL_MAX_IN_FLIGHT": "2",
        "MISTRAL_LOCAL_MAX_WAITING": "2",
        "MISTRAL_LOCAL_QUEUE_TIMEOUT_S": str(QUEUE_TIMEOUT_S),
        "MISTRAL_LOCAL_RESPONSE_CACHE": "true",
        "MISTRAL_LOCAL_DB_PATH": str(tmp_path_factory.mktemp("records") / "g.sqlite3"),
        "MISTRAL_LOCAL_IMAGE_FETCH_POLICY": "allowlist",  # the tests' image server is on loopback
        "MISTRAL_LOCAL_IMAGE_FETCH_ALLOWLIST": '["127.0.0.1"]',
    }
    with attached_gateway("gateway-guarded", gateway, ENGINE_KEY, env, headers=auth("alice")) as gw:
        yield gw


HI: Any = [{"role": "user", "content": "hi"}]


def auth(label: str) -> dict[str, str]:
    return bearer(KEYS[label])


def chat(gw: Gateway, label: str | None, max_tokens: int = 4) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/api/v1/chat/completions",
        headers=auth(label) if label else {},
        timeout=120,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens},
    )


def test_keys_required_and_models_public(guarded: Gateway) -> None:
    assert chat(guarded, None).status_code == 401
    assert httpx.get(f"{guarded.url}/api/v1/models").status_code == 200
    assert chat(guarded, "alice").status_code == 200
    off = chat(guarded, "off")
    assert off.status_code == 403
    disabled = {"code": 403, "message": "API key 'off' is disabled", "metadata": {"error_type": "permission_denied"}}
    assert off.json() == {"error": disabled}


def test_token_budget_runs_out_with_a_402(guarded: Gateway) -> None:
    first = chat(guarded, "budget", max_tokens=8)
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    # What is left cannot cover another answer of up to 8 tokens: refused up front, as OpenRouter refuses a request
    # its credits may not cover.
    second = chat(guarded, "budget", max_tokens=8)
    assert second.status_code == 402
    assert f"has {20 - used} tokens left of its budget" in second.json()["error"]["message"]
    key = httpx.get(f"{guarded.url}/api/v1/key", headers=auth("budget")).json()["data"]
    assert key["label"] == "budget" and key["limits"]["token_budget"] == 20 and key["usage_tokens"] == used


def test_requests_per_minute(guarded: Gateway) -> None:
    assert [chat(guarded, "rpm").status_code for _ in range(2)] == [200, 200]
    limited = chat(guarded, "rpm")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["code"] == 429
    # The OpenRouter SDK's own error, with OpenRouter's error_type in it.
    sdk = OpenRouter(
        api_key=KEYS["rpm"], server_url=f"{guarded.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
    )
    with sdk, pytest.raises(errors.TooManyRequestsResponseError) as info:
        sdk.chat.send(messages=HI, max_tokens=4)
    assert info.value.data.error.metadata == {"error_type": "rate_limit_exceeded", "limit_source": "key"}


def test_burst_of_ten_times_capacity(guarded: Gateway) -> None:
    with ThreadPoolExecutor(10 * CAPACITY) as pool:
        results = list(pool.map(lambda _: chat(guarded, "alice", max_tokens=16), range(10 * CAPACITY)))
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert len(ok) + len(refused) == len(results)  # nothing else: no 5xx (a hang is the client's timeout)
    assert len(ok) >= CAPACITY and refused
    assert all(r.json()["usage"]["completion_tokens"] == 16 for r in ok)
    # Refused by the server's bounds (a full queue, or a waiter's queue time up), never by alice's own limits.
    assert all(r.json()["error"]["message"] == "Rate limit exceeded: server at capacity" for r in refused)
    assert all(r.headers["retry-after"].isdigit() for r in refused)


def test_a_request_without_max_tokens_counts_as_the_rest_of_the_context(guarded: Gateway) -> None:
    """It may run to the end of the context: counted as 1,024 tokens, two of them fit a limit of 2,500 per minute
    while each could generate ~4,000."""
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "ignore_eos": True}
    url = f"{guarded.url}/api/v1/chat/completions"
    with httpx.stream("POST", url, headers=auth("tpm"), json=body, timeout=120) as running:
        assert running.status_code == 200
        lines = running.iter_lines()  # kept: a dropped iterator closes the stream
        next(lines)  # generating
        second = chat(guarded, "tpm", max_tokens=4)
    assert second.status_code == 429
    assert second.json()["error"]["metadata"] == {"limit_source": "key", "error_type": "rate_limit_exceeded"}


def test_every_prompt_of_a_legacy_prompt_list_counts(guarded: Gateway) -> None:
    """Four prompts are four sequences: four times 300 tokens do not fit a budget of 1,000 (one time did)."""
    body = {"prompt": ["a", "b", "c", "d"], "max_tokens": 300}
    r = httpx.post(f"{guarded.url}/api/v1/completions", headers=auth("lean"), json=body, timeout=120)
    assert r.status_code == 402
    assert "may use up to" in r.json()["error"]["message"]
    one = httpx.post(
        f"{guarded.url}/api/v1/completions", headers=auth("lean"), json=body | {"prompt": "a"}, timeout=120
    )
    assert one.status_code == 200


def test_a_limited_key_costs_no_image_fetch(guarded: Gateway, image_server: str) -> None:
    assert chat(guarded, "once").status_code == 200
    SEEN_HEADERS.pop("/photo.png?limited", None)
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"{image_server}/photo.png?limited"}},
    ]
    r = httpx.post(
        f"{guarded.url}/api/v1/chat/completions",
        headers=auth("once"),
        json={"messages": [{"role": "user", "content": content}], "max_tokens": 4},
        timeout=60,
    )
    assert r.status_code == 429
    assert "/photo.png?limited" not in SEEN_HEADERS  # refused before the image was fetched


def test_a_key_sees_only_its_own_generations(guarded: Gateway) -> None:
    mine = chat(guarded, "alice")
    gen_id = mine.json()["id"]
    url = f"{guarded.url}/api/v1/generation"
    assert httpx.get(url, params={"id": gen_id}, headers=auth("alice")).status_code == 200
    other = httpx.get(url, params={"id": gen_id}, headers=auth("rpm"))
    assert other.status_code == 404
    assert other.json()["error"]["message"] == f"Generation {gen_id} not found"


def test_metrics_need_a_management_key(guarded: Gateway) -> None:
    """They list every key's label and tokens."""
    refused = httpx.get(f"{guarded.url}/metrics", headers=auth("alice"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == 403
    assert httpx.get(f"{guarded.url}/metrics").status_code == 401
    shown = httpx.get(f"{guarded.url}/metrics", headers=auth("ops"))
    assert shown.status_code == 200
    assert 'key="alice"' in shown.text


def test_a_stream_left_before_its_usage_is_still_charged(guarded: Gateway) -> None:
    """Leaving before the final usage chunk used to record 0 tokens: a budget could be spent without end."""
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 200, "ignore_eos": True}
    url = f"{guarded.url}/api/v1/chat/completions"
    with httpx.stream("POST", url, headers=auth("quitter"), json=body, timeout=120) as r:
        lines = r.iter_lines()
        read = [line for line, _ in zip((x for x in lines if x.startswith("data:")), range(10), strict=False)]
    assert len(read) == 10
    deadline = time.monotonic() + 30
    while (used := key_usage(guarded, "quitter")) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert used >= 10 + 2  # at least the chunks read, and a prompt


def key_usage(gw: Gateway, label: str) -> int:
    tokens: int = httpx.get(f"{gw.url}/api/v1/key", headers=auth(label)).json()["data"]["usage_tokens"]
    return tokens


def cached_tokens(gw: Gateway, label: str, prompt: str) -> int:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
    r = httpx.post(f"{gw.url}/api/v1/chat/completions", headers=auth(label), json=body, timeout=120)
    assert r.status_code == 200, r.text
    return int(r.json()["usage"]["prompt_tokens_details"]["cached_tokens"])


def test_each_key_has_its_own_prefix_cache(guarded: Gateway) -> None:
    """A prompt one key sent is cached for that key only: another key sending it gets no cache hit, so it cannot
    tell from timing (or from cached_tokens) what others asked."""
    prompt = " ".join(secrets.token_hex(4) for _ in range(150))  # new to the engine, many cache blocks long
    assert cached_tokens(guarded, "tenant1", prompt) == 0
    assert cached_tokens(guarded, "tenant1", prompt) > 0  # the same key hits its own cache
    assert cached_tokens(guarded, "tenant2", prompt) == 0
    assert cached_tokens(guarded, "tenant2", prompt) > 0


def test_records_say_which_user_session_and_request(guarded: Gateway) -> None:
    """OpenRouter's `user` and `session_id` (or its x-session-id header) are recorded with the request id, which
    the response's X-Request-Id and the logs also carry."""
    url = f"{guarded.url}/api/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "user": "user-17"}
    r = httpx.post(url, headers=auth("alice") | {"x-session-id": "session-9"}, json=body, timeout=120)
    assert r.status_code == 200
    gen = httpx.get(f"{guarded.url}/api/v1/generation", params={"id": r.json()["id"]}, headers=auth("alice"))
    data = gen.json()["data"]
    assert data["external_user"] == "user-17"
    assert data["session_id"] == "session-9"
    assert data["request_id"] == r.headers["x-request-id"]
    anonymous = httpx.post(url, headers=auth("alice"), json=body | {"user": None}, timeout=120).json()["id"]
    data = httpx.get(f"{guarded.url}/api/v1/generation", params={"id": anonymous}, headers=auth("alice")).json()
    assert data["data"]["external_user"] is None and "session_id" not in data["data"]


def test_a_key_made_with_a_deleted_keys_name_inherits_nothing(guarded: Gateway) -> None:
    """The review's steps (2026-12, M2): a key made through /keys, a cached answer, its key deleted, a new key under
    the same name. The new key finds neither the old one's record, nor its cached answer, nor its prefix cache,
    nor its spending."""
    ops, keys = auth("ops"), f"{guarded.url}/api/v1/keys"
    first = httpx.post(keys, headers=ops, json={"name": "dave"}).json()
    prompt = " ".join(secrets.token_hex(4) for _ in range(150))  # new to the engine, many cache blocks long
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
    url, cache = f"{guarded.url}/api/v1/chat/completions", {"X-OpenRouter-Cache": "true"}
    old = httpx.post(url, headers=bearer(first["key"]) | cache, json=body, timeout=120)
    assert old.status_code == 200 and old.headers["x-openrouter-cache-status"] == "MISS"
    again = httpx.post(url, headers=bearer(first["key"]), json=body, timeout=120)
    assert again.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 0  # dave's own prefix cache
    assert httpx.delete(f"{keys}/{first['data']['hash']}", headers=ops).status_code == 200

    second = httpx.post(keys, headers=ops, json={"name": "dave"}).json()
    assert second["data"]["hash"] != first["data"]["hash"] and second["data"]["usage"] == 0
    new = bearer(second["key"])
    record = httpx.get(f"{guarded.url}/api/v1/generation", params={"id": old.headers["x-generation-id"]}, headers=new)
    assert record.status_code == 404
    assert httpx.get(f"{guarded.url}/api/v1/key", headers=new).json()["data"]["usage_tokens"] == 0
    replay = httpx.post(url, headers=new | cache, json=body, timeout=120)
    assert replay.headers["x-openrouter-cache-status"] == "MISS"
    assert replay.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


@pytest.mark.parametrize("name", ["x\ny", "\u202egnp.exe", "bob ", " bob", "a\tb", "ALICE", ""])
def test_key_names_are_printable_and_unlike_any_other(guarded: Gateway, name: str) -> None:
    r = httpx.post(f"{guarded.url}/api/v1/keys", headers=auth("ops"), json={"name": name})
    assert r.status_code == 400, r.text
