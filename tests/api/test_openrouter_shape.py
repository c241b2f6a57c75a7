"""OpenRouter's request and response shape, end to end on the real engine (issue: OpenRouter-compatible API)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter

from server.settings import CANONICAL_SLUG, OPENROUTER_MODEL_ID
from tests.support.gateway_process import Gateway
from tests.support.helpers import SDK_TIMEOUT_MS, png_data_url, post

pytestmark = pytest.mark.engine

MODEL = OPENROUTER_MODEL_ID
GEN_ID = re.compile(r"^gen-\d{10}-[A-Za-z0-9]{20}$")


def test_seed_example_text_and_remote_image(api: openai.OpenAI, image_server: str) -> None:
    """The README's drop-in: OpenRouter code with only base_url and key changed."""
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL,
        extra_headers={"HTTP-Referer": "https://example.org/app", "X-Title": "Example App"},
        extra_body={
            "provider": {"sort": "price", "allow_fallbacks": True},
            "transforms": [],
            "usage": {"include": True},
            "top_k": 40,
            "repetition_penalty": 1.05,
            "min_p": 0.05,
        },
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": f"{image_server}/photo.png"}},
                ],
            }
        ],
        max_tokens=6,
    )
    body = raw.http_response.json()
    assert GEN_ID.match(body["id"])
    assert raw.headers["x-generation-id"] == body["id"]
    assert body["provider"] == "Local"
    assert body["model"] == MODEL
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["system_fingerprint"] is None
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and choice["native_finish_reason"] == "length"
    assert choice["message"]["refusal"] is None and choice["message"]["reasoning"] is None
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    usage = body["usage"]
    assert usage["completion_tokens"] == 6
    assert usage["prompt_tokens"] > 96  # the 300x200 image alone is 96 tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + 6
    assert usage["cost"] == 0 and usage["is_byok"] is False
    assert usage["prompt_tokens_details"]["cached_tokens"] >= 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_plain_v1_prefix_and_official_openrouter_sdk(gateway: Gateway) -> None:
    sdk = OpenRouter(
        api_key="sk-or-v1-local", server_url=f"{gateway.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
    )
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    result = sdk.chat.send(model=MODEL, messages=hi, max_tokens=3)
    assert result.id.startswith("gen-") and result.usage is not None and result.usage.completion_tokens == 3
    stream = sdk.chat.send(model=MODEL, messages=hi, max_tokens=3, stream=True)
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert (
        post(
            gateway.url, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, path="/v1/chat/completions"
        ).json()["usage"]["completion_tokens"]
        == 2
    )


@pytest.mark.parametrize("model", [MODEL, CANONICAL_SLUG, f"{MODEL}:free", None])
def test_model_ids_are_resolved_and_echoed(gateway: Gateway, model: str | None) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    if model is not None:
        body["model"] = model
    r = post(gateway.url, body)
    assert r.status_code == 200
    assert r.json()["model"] == (model or MODEL)


def test_unknown_model_and_models_fallback_list(gateway: Gateway) -> None:
    r = post(gateway.url, {"model": "acme/fake-1.0", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    invalid = {"code": 400, "message": "acme/fake-1.0 is not a valid model ID"}
    assert r.json() == {"error": invalid | {"metadata": {"error_type": "invalid_request"}}}
    r = post(
        gateway.url,
        {"model": "acme/fake-1.0", "models": [MODEL], "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200 and r.json()["model"] == MODEL


def test_max_completion_tokens_and_unknown_fields(gateway: Gateway) -> None:
    r = post(
        gateway.url,
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 3,
            "some_future_field": {"x": 1},
            "session_id": "s1",
            "metadata": {"k": "v"},
            "user": "u1",
            "debug": {"echo_upstream_body": False},
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 3


def test_parameters_the_engine_cannot_honour(gateway: Gateway) -> None:
    base = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
        "top_a": 0.3,
        "prediction": {"type": "content", "content": "x"},
    }
    assert post(gateway.url, base).status_code == 200  # ignored, as OpenRouter does
    r = post(gateway.url, base | {"provider": {"require_parameters": True}})
    assert r.status_code == 400
    assert r.json()["error"]["metadata"]["unsupported_parameters"] == ["top_a", "prediction"]


def test_seeded_sampling_is_reproducible_and_logprobs_are_returned(gateway: Gateway) -> None:
    body = {
        "messages": [{"role": "user", "content": "Tell me a story"}],
        "max_tokens": 8,
        "temperature": 1.0,
        "seed": 1234,
        "logprobs": True,
        "top_logprobs": 2,
    }
    a, b = post(gateway.url, body).json(), post(gateway.url, body).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    content = a["choices"][0]["logprobs"]["content"]
    assert len(content) == 8 and len(content[0]["top_logprobs"]) == 2


def test_roles_names_and_prefill(gateway: Gateway) -> None:
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "name": "alice", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Continue"},
    ]
    r = post(gateway.url, {"messages": messages, "max_tokens": 2})
    assert r.status_code == 200
    # A trailing assistant message is a prefill: the model continues it, so the prompt grows by its tokens.
    plain = post(gateway.url, {"messages": messages, "max_tokens": 2}).json()["usage"]["prompt_tokens"]
    prefilled = post(
        gateway.url, {"messages": [*messages, {"role": "assistant", "content": "Sure, the answer is"}], "max_tokens": 2}
    )
    assert prefilled.status_code == 200
    assert prefilled.json()["usage"]["prompt_tokens"] > plain


def test_a_file_that_is_not_a_pdf_is_a_400(gateway: Gateway) -> None:
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"}}
    r = post(gateway.url, {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}]})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("messages[0].content[1]: a.pdf could not be read as a PDF")


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "video_url", "video_url": {"url": "https://example.org/v.mp4"}},
    ],
)
def test_non_image_media_is_a_400(gateway: Gateway, part: dict[str, Any]) -> None:
    r = post(gateway.url, {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}]})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        f"messages[0].content[1]: '{part['type']}' parts are not supported: this model takes text and images"
    )


def test_images_are_fetched_checked_and_downscaled(gateway: Gateway, image_server: str) -> None:
    def prompt_tokens(url: str) -> int:
        r = post(
            gateway.url,
            {
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            },
        )
        assert r.status_code == 200, r.text
        return int(r.json()["usage"]["prompt_tokens"])

    # 3000x2000 becomes 1540x1027 before the engine: 55x37 image tokens + 37 row ends.
    assert prompt_tokens(f"{image_server}/huge.png") - prompt_tokens(png_data_url(28, 28)) == (55 * 37 + 37) - 2
    for url, message in [
        (f"{image_server}/missing.png", "fetching the image returned HTTP 404"),
        (f"{image_server}/not-an-image.png", "the data is not a readable image"),
        ("data:image/png;base64,%%%", "the data URL's base64 is invalid"),
        ("file:///etc/passwd", "image URLs must be http(s) or data:image URLs"),
    ]:
        r = post(
            gateway.url, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
        )
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("messages[0].content[0].image_url.url: " + message)


def test_legacy_completions(gateway: Gateway) -> None:
    r = post(gateway.url, {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4}, path="/api/v1/completions")
    body = r.json()
    assert GEN_ID.match(body["id"]) and body["object"] == "text_completion"
    assert body["choices"][0]["text"] and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4


def test_cached_tokens_come_from_the_engines_prefix_cache(gateway: Gateway) -> None:
    prefix = "You are a meticulous assistant. " * 60  # several KV blocks long
    body = {"messages": [{"role": "system", "content": prefix}, {"role": "user", "content": "hi"}], "max_tokens": 1}
    post(gateway.url, body)
    again = post(gateway.url, body).json()["usage"]
    assert again["prompt_tokens_details"]["cached_tokens"] > 0
    assert again["prompt_tokens_details"]["cached_tokens"] <= again["prompt_tokens"]


def test_logit_bias_steers_tokens(gateway: Gateway) -> None:
    tokens = httpx.post(f"{gateway.url}/api/v1/tokenize", json={"model": MODEL, "prompt": " banana"}).json()
    target = tokens["tokens"][-1]
    text = httpx.post(f"{gateway.url}/api/v1/detokenize", json={"model": MODEL, "tokens": [target]}).json()["prompt"]
    r = post(
        gateway.url,
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
            "temperature": 0,
            "logit_bias": {str(target): 100},
            "logprobs": True,
        },
    )
    assert [t["token"] for t in r.json()["choices"][0]["logprobs"]["content"]] == [text] * 3


def test_provider_preferences_on_the_local_provider(gateway: Gateway) -> None:
    base = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    r = post(gateway.url, base | {"provider": {"only": ["openai"]}})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == (
        f"No endpoints found for {MODEL} that match your provider preferences (provider.only)."
    )
    assert post(gateway.url, base | {"provider": {"quantizations": ["fp8"]}}).status_code == 404
    for kept in (
        {"only": ["local"]},
        {"order": ["Local"], "allow_fallbacks": False},
        {"data_collection": "deny"},
        {"zdr": True, "max_price": {"prompt": 1, "completion": 1}},
    ):
        assert post(gateway.url, base | {"provider": kept}).status_code == 200, kept
