"""Every kind of answer the server gives, parsed by the official OpenRouter Python SDK (strict by design: it rejects a
null where OpenRouter omits a field, and a field it requires that is missing). The rule the server follows: fields
OpenRouter omits are omitted, never null. A new SDK release that demands more fails here first."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anthropic
import openai
import pytest
from openrouter import OpenRouter, errors

from server.access.auth import hash_key, new_key
from server.settings import OPENROUTER_MODEL_ID as MODEL
from tests.support.gateway_process import ENGINE_KEY, Gateway, attached_gateway
from tests.support.helpers import SDK_TIMEOUT_MS, WEATHER_TOOL, png_data_url

pytestmark = pytest.mark.engine

HI: Any = [{"role": "user", "content": "hi"}]
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}
TOOLS: Any = [WEATHER_TOOL]


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenRouter]:
    with OpenRouter(
        api_key="sk-or-v1-local", server_url=f"{gateway.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
    ) as client:
        yield client


def test_chat_text_image_and_logprobs(sdk: OpenRouter) -> None:
    content: Any = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": png_data_url()}}]
    asked: Any = [{"role": "user", "content": content}]
    r = sdk.chat.send(model=MODEL, messages=asked, max_tokens=3, logprobs=True)
    assert r.id.startswith("gen-") and r.usage is not None and r.usage.completion_tokens == 3
    assert r.choices[0].message.content and r.choices[0].logprobs is not None


def test_chat_streamed_ends_with_usage(sdk: OpenRouter) -> None:
    chunks = list(sdk.chat.send(model=MODEL, messages=HI, max_tokens=4, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].choices == []


def test_tool_calls_sent_and_streamed(sdk: OpenRouter) -> None:
    r = sdk.chat.send(model=MODEL, messages=HI, tools=TOOLS, tool_choice=FORCE, max_tokens=64, temperature=0)
    calls = r.choices[0].message.tool_calls
    assert calls and set(json.loads(calls[0].function.arguments)) == {"city", "days"}
    arguments = ""
    streamed = sdk.chat.send(
        model=MODEL, messages=HI, tools=TOOLS, tool_choice=FORCE, max_tokens=64, temperature=0, stream=True
    )
    for chunk in streamed:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                arguments += (call.function.arguments if call.function else None) or ""
    assert set(json.loads(arguments)) == {"city", "days"}


def test_a_forced_call_cut_by_max_tokens_is_the_call_so_far(sdk: OpenRouter) -> None:
    """As OpenAI answers it: the call with the arguments written so far and `finish_reason: length`, sent and
    streamed alike (it was the call's raw JSON, `[{"name":"get_weather",...`, in `content`)."""
    asked: Any = {"model": MODEL, "messages": HI, "tools": TOOLS, "tool_choice": FORCE, "max_tokens": 14}
    choice = sdk.chat.send(**asked, temperature=0).choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments.startswith('{"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)  # cut, as the model left it
    streamed = [c for chunk in sdk.chat.send(**asked, temperature=0, stream=True) for c in chunk.choices]
    calls = [t for c in streamed for t in c.delta.tool_calls or []]
    assert [t.function.name for t in calls if t.function and t.function.name] == ["get_weather"]
    assert "".join(t.function.arguments or "" for t in calls if t.function) == call.function.arguments
    assert [c.finish_reason for c in streamed if c.finish_reason] == ["length"]


def test_service_tiers_reach_the_engines_priority_scheduling(sdk: OpenRouter) -> None:
    """`fast` (OpenRouter's 2026 alias of `priority`) and `flex` become vLLM request priorities (-1 and 1), which an
    engine refuses unless it schedules by priority: an answer proves the engine took them."""
    for tier in ("fast", "ultrafast", "flex"):
        r = sdk.chat.send(model=MODEL, messages=HI, max_tokens=2, service_tier=tier)
        assert r.choices[0].message.content, tier


def test_errors_name_their_type_in_each_api(sdk: OpenRouter, gateway: Gateway) -> None:
    """OpenRouter's 2026 error types, each read through its API's official SDK: chat's in `error.metadata`, the
    Messages API's in `error`, the Responses API's at the top level."""
    broken: Any = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]}]
    with pytest.raises(errors.BadRequestResponseError) as image:
        sdk.chat.send(model=MODEL, messages=broken, max_tokens=2)
    assert image.value.data.error.metadata == {"error_type": "invalid_image"}
    long: Any = [{"role": "user", "content": "word " * 6000}]
    with pytest.raises(errors.BadRequestResponseError) as too_long:
        sdk.chat.send(model=MODEL, messages=long, max_tokens=2)
    assert too_long.value.data.error.metadata == {"provider_name": None, "error_type": "context_length_exceeded"}
    source: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    claude = anthropic.Anthropic(base_url=f"{gateway.url}/api", api_key="sk-local", max_retries=0)
    with claude, pytest.raises(anthropic.BadRequestError) as messages:
        claude.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": [source]}])
    assert messages.value.response.json()["error"]["error_type"] == "invalid_image"
    oai = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key="sk-local", max_retries=0)
    with oai, pytest.raises(openai.BadRequestError) as responses:
        oai.responses.create(model=MODEL, input="word " * 6000, max_output_tokens=2)
    assert responses.value.response.json()["error_type"] == "context_length_exceeded"


def test_models_paginated_and_endpoints(sdk: OpenRouter) -> None:
    page, past = sdk.models.list(offset=0, limit=10), sdk.models.list(offset=1, limit=10)
    assert page is not None and past is not None
    assert [m.id for m in page.result.data] == [MODEL]
    assert past.result.data == []
    assert sdk.models.count().data.count == 1
    endpoints = sdk.endpoints.list(author="mistralai", slug="mistral-small-3.1-24b-instruct")
    assert endpoints.data.endpoints[0].supports_tool_choice.required


def test_generation_key_credits_and_activity(sdk: OpenRouter) -> None:
    r = sdk.chat.send(model=MODEL, messages=HI, max_tokens=2)
    record = sdk.generations.get_generation(id=r.id).data
    assert record.id == r.id and record.tokens_completion == 2
    with warnings.catch_warnings():  # the SDK warns on parsing /key fields it marks deprecated, yet requires
        warnings.simplefilter("ignore", DeprecationWarning)
        key = sdk.api_keys.get_current_key_metadata().data
    assert key.usage == 0 and key.limit is None
    credits = sdk.credits.get_credits().data
    assert credits.total_usage == 0  # the served model is priced at 0
    today = datetime.now(UTC).date().isoformat()
    rows = sdk.analytics.get_user_activity(request={"date_": today}).data
    assert any(row.model == MODEL and row.requests >= 1 for row in rows)


def test_responses_through_the_sdk(sdk: OpenRouter) -> None:
    r = sdk.responses.send(model=MODEL, input="hi", max_output_tokens=3)
    assert r.id.startswith("gen-") and r.usage and r.usage.output_tokens == 3


def test_a_keys_429_is_the_sdks_own_error(gateway: Gateway) -> None:
    """A key past its requests per minute, on a gateway with keys attached to the same engine."""
    key = new_key()
    spec = [{"label": "once", "sha256": hash_key(key), "limits": {"requests_per_minute": 1}}]
    env = {"MISTRAL_LOCAL_API_KEYS": json.dumps(spec)}
    headers = {"Authorization": f"Bearer {key}"}
    with (
        attached_gateway("gateway-sdk-429", gateway, ENGINE_KEY, env, headers=headers) as limited,
        OpenRouter(
            api_key=key, server_url=f"{limited.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
        ) as once,
    ):
        once.chat.send(model=MODEL, messages=HI, max_tokens=1)
        with pytest.raises(errors.TooManyRequestsResponseError) as info:
            once.chat.send(model=MODEL, messages=HI, max_tokens=1)
    assert info.value.data.error.code == 429
