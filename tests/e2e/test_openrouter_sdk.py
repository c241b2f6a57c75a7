"""Every kind of answer the server gives, parsed by the official OpenRouter Python SDK (strict by design: it rejects a
null where OpenRouter omits a field, and a field it requires that is missing). The rule the server follows: fields
OpenRouter omits are omitted, never null. A new SDK release that demands more fails here first."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from openrouter import OpenRouter, errors

from server.access.auth import hash_key, new_key
from server.settings import OPENROUTER_MODEL_ID as MODEL
from tests.conftest import ENGINE_KEY
from tests.e2e.test_chat import WEATHER_TOOL
from tests.gateway_process import Gateway, attached_gateway
from tests.helpers import png_data_url

pytestmark = pytest.mark.engine

HI: Any = [{"role": "user", "content": "hi"}]
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}
TOOLS: Any = [WEATHER_TOOL]


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenRouter]:
    with OpenRouter(api_key="sk-or-v1-local", server_url=f"{gateway.url}/api/v1", retry_config=None) as client:
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
        OpenRouter(api_key=key, server_url=f"{limited.url}/api/v1", retry_config=None) as once,
    ):
        once.chat.send(model=MODEL, messages=HI, max_tokens=1)
        with pytest.raises(errors.TooManyRequestsResponseError) as info:
            once.chat.send(model=MODEL, messages=HI, max_tokens=1)
    assert info.value.data.error.code == 429
