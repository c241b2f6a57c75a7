"""Errors of every status the gateway answers without an engine, through the official OpenRouter SDKs (Python, and
TypeScript via tests/sdk_ts/parse.mjs): each becomes the SDK's own typed error (a body it could not parse would
surface as a validation error instead). And streamed chunks, a mid-stream failure among them, through the TypeScript
SDK's own chunk schema."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openrouter import OpenRouter, errors

from server.access.auth import hash_key, new_key
from server.errors import availability
from server.generation.outbound import Envelope, Pricing, error_chunk
from server.generation.stream import ChunkShaper, StreamOutcome
from tests.support.served_app import gateway_settings, served_app

SDK_DIR = Path(__file__).resolve().parent / "sdk_ts"

KEYS = {name: new_key() for name in ("ok", "off", "lean")}
SPECS = [
    {"label": "ok", "sha256": hash_key(KEYS["ok"])},
    {"label": "off", "sha256": hash_key(KEYS["off"]), "disabled": True},
    {"label": "lean", "sha256": hash_key(KEYS["lean"]), "limits": {"token_budget": 10}},
]
MODEL = "mistralai/mistral-small-3.1-24b-instruct"
HI: Any = [{"role": "user", "content": "hi"}]
LONG: Any = [{"role": "user", "content": "x" * 8000}]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = gateway_settings(api_keys=json.loads(json.dumps(SPECS)), max_body_bytes=4096)
    with served_app(settings) as base:  # its engine is nowhere: 503 for generations
        yield f"{base}/api/v1"


def sdk(url: str, key: str) -> OpenRouter:
    return OpenRouter(api_key=KEYS.get(key, key), server_url=url, retry_config=None)


# (status, key, call, the SDK's error, OpenRouter's error_type)
CASES: list[tuple[str, str, Callable[[OpenRouter], Any], type[Exception], str]] = [
    ("400", "ok", lambda s: s.chat.send(model="acme/nope", messages=HI), errors.BadRequestResponseError,
     "invalid_request"),
    ("401", "sk-wrong", lambda s: s.chat.send(model=MODEL, messages=HI), errors.UnauthorizedResponseError,
     "authentication"),
    ("402", "lean", lambda s: s.chat.send(model=MODEL, messages=HI, max_tokens=100),
     errors.PaymentRequiredResponseError, "payment_required"),
    ("403", "off", lambda s: s.chat.send(model=MODEL, messages=HI), errors.ForbiddenResponseError,
     "permission_denied"),
    ("404", "ok", lambda s: s.generations.get_generation(id="gen-0-none"), errors.NotFoundResponseError,
     "not_found"),
    ("413", "ok", lambda s: s.chat.send(model=MODEL, messages=LONG),
     errors.PayloadTooLargeResponseError, "payload_too_large"),
    ("503", "ok", lambda s: s.chat.send(model=MODEL, messages=HI), errors.ServiceUnavailableResponseError,
     "provider_overloaded"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "key", "call", "error", "error_type"), CASES, ids=[c[0] for c in CASES])
def test_each_status_is_the_sdks_own_error_with_its_type(
    url: str, status: str, key: str, call: Callable[[OpenRouter], Any], error: type[Exception], error_type: str
) -> None:
    """The SDK's typed error, and OpenRouter's 2026 `error.metadata.error_type` in its parsed body."""
    with pytest.raises(error) as info:
        call(sdk(url, key))
    parsed = info.value.data.error  # type: ignore[attr-defined]
    assert str(parsed.code) == status
    assert parsed.metadata["error_type"] == error_type


def run_ts_sdk(given: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the TypeScript SDK's tests"
    done = subprocess.run(
        [node, "parse.mjs"], input=json.dumps(given), capture_output=True, text=True, cwd=SDK_DIR, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def test_the_typescript_sdk_raises_its_own_error_for_each_status(url: str) -> None:
    given = {"mode": "errors", "url": url.removesuffix("/api/v1"), "model": MODEL, "keys": KEYS}
    results = run_ts_sdk(given)
    expected = {"e400": "BadRequest", "e401": "Unauthorized", "e402": "PaymentRequired", "e403": "Forbidden",
                "e404": "NotFound", "e413": "PayloadTooLarge", "e503": "ServiceUnavailable"}  # fmt: skip
    for check, kind in expected.items():
        assert results[check]["ok"], results[check]
        assert results[check]["value"] == {"raised": f"{kind}ResponseError", "status": int(check[1:])}


def test_the_typescript_sdk_parses_a_mid_stream_error_and_the_usage_chunk() -> None:
    """OpenRouter's TypeScript SDK failed on every streamed chunk while they carried `system_fingerprint: null`. The
    failure carries OpenRouter's availability object, as the gateway sends it when a stream's engine stops."""
    env = Envelope("gen-1-abcdefghijklmnopqrst", 1, MODEL, "Local", Pricing.from_strings("0", "0"))
    shaper = ChunkShaper(env, StreamOutcome(), text_completion=False)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    text = shaper.shape({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    last = shaper.shape({"id": "x", "choices": [], "usage": usage})
    gone = availability("temporarily_unavailable")
    failure = error_chunk(env, 502, "Engine stopped during generation", "provider_unavailable", gone)
    chunks = [orjson.dumps(c).decode() for c in (text, last, failure)]
    results = run_ts_sdk({"mode": "chunks", "url": "http://unused", "model": MODEL, "chunks": chunks})
    assert results["chunks"]["ok"], results["chunks"]
    assert results["chunks"]["value"] == [
        {"error": None, "finish": None, "usage": None},
        {"error": None, "finish": None, "usage": 5},
        {"error": 502, "finish": "error", "usage": None},
    ]
