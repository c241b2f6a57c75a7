"""Models listing, key info, generation records (no content stored), tokenizer routes, OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from server.settings import CANONICAL_SLUG, OPENROUTER_MODEL_ID
from tests.support.gateway_process import CACHE_DIR, Gateway
from tests.support.helpers import wait_until_stored

pytestmark = pytest.mark.engine


def get(gateway: Gateway, path: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}{path}", timeout=30)


def test_models_listing_in_openrouter_schema(gateway: Gateway) -> None:
    body = get(gateway, "/api/v1/models").json()
    assert body["total_count"] == 1 and body["links"] == {"next": None}
    model = body["data"][0]
    assert model["id"] == OPENROUTER_MODEL_ID and model["canonical_slug"] == CANONICAL_SLUG
    assert model["context_length"] == 4096 == model["top_provider"]["context_length"]
    assert model["architecture"]["modality"] == "text+image->text"
    assert model["architecture"]["tokenizer"] == "Mistral"
    assert model["pricing"] == {"prompt": "0", "completion": "0"}
    assert model["default_parameters"] == {"temperature": 0.15}
    assert {"tools", "tool_choice", "response_format", "seed", "logprobs"} <= set(model["supported_parameters"])
    assert "top_a" not in model["supported_parameters"]
    assert get(gateway, f"/api/v1/model/{OPENROUTER_MODEL_ID}").json()["data"]["id"] == OPENROUTER_MODEL_ID
    endpoints = get(gateway, f"/api/v1/models/{CANONICAL_SLUG}/endpoints").json()["data"]
    assert endpoints["endpoints"][0]["provider_name"] == "Local"
    missing = get(gateway, "/api/v1/model/acme/fake")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


def test_key_and_its_older_alias(gateway: Gateway) -> None:
    key = get(gateway, "/api/v1/key").json()["data"]
    assert key["label"] and key["limit"] is None and isinstance(key["usage"], float)
    assert get(gateway, "/api/v1/auth/key").json()["data"].keys() == key.keys()


def wait_record(gateway: Gateway, generation_id: str) -> dict[str, Any]:
    r = get(gateway, f"/api/v1/generation?id={generation_id}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def test_generation_records_hold_metadata_never_text(gateway: Gateway) -> None:
    canary = "CANARY-7f3a9e-do-not-store"
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": canary}], "max_tokens": 4},
    )
    gen_id = r.json()["id"]
    record = wait_record(gateway, gen_id)
    assert record["id"] == gen_id and record["model"] == OPENROUTER_MODEL_ID
    assert record["tokens_completion"] == 4 and record["tokens_prompt"] == r.json()["usage"]["prompt_tokens"]
    assert record["streamed"] is False and record["cancelled"] is False
    assert record["finish_reason"] == "length" and record["provider_name"] == "Local"
    assert record["generation_time"] >= 0

    with httpx.stream(
        "POST",
        f"{gateway.url}/api/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": canary}], "max_tokens": 3, "stream": True},
    ) as s:
        streamed_id = s.headers["x-generation-id"]
        list(s.iter_lines())
    streamed = wait_record(gateway, streamed_id)
    assert streamed["streamed"] is True and streamed["tokens_completion"] == 3 and streamed["latency"] >= 0

    db = CACHE_DIR / "generations.sqlite3"
    wait_until_stored(db, {gen_id, streamed_id})
    for path in db.parent.glob("generations.sqlite3*"):
        assert canary.encode() not in path.read_bytes()
    assert get(gateway, "/api/v1/generation?id=gen-0-nope").status_code == 404


def test_tokenize_and_detokenize(gateway: Gateway) -> None:
    tokens = httpx.post(
        f"{gateway.url}/api/v1/tokenize", json={"model": OPENROUTER_MODEL_ID, "prompt": "Hello world"}
    ).json()
    assert tokens["count"] == len(tokens["tokens"]) > 0
    text = httpx.post(
        f"{gateway.url}/api/v1/detokenize", json={"model": OPENROUTER_MODEL_ID, "tokens": tokens["tokens"]}
    ).json()
    assert "Hello world" in text["prompt"]


def test_openapi_tells_the_truth(gateway: Gateway) -> None:
    spec = get(gateway, "/openapi.json").json()
    for prefix in ("/api/v1", "/v1"):
        for path in (
            "/chat/completions",
            "/completions",
            "/models",
            "/models/{author}/{slug}/endpoints",
            "/model/{author}/{slug}",
            "/generation",
            "/key",
            "/auth/key",
            "/tokenize",
            "/detokenize",
        ):
            assert prefix + path in spec["paths"], prefix + path
    chat = spec["paths"]["/api/v1/chat/completions"]["post"]
    assert {"200", "400", "503"} <= set(chat["responses"])
