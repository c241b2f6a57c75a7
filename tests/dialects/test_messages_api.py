"""Anthropic's Messages API against the real engine through the Anthropic SDK, pointed at the server as coding
agents point it at OpenRouter (base URL `…/api`, the SDK adds `/v1/messages`): text, streaming, tools and their
results, images, token counting."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from server.settings import OPENROUTER_MODEL_ID as MODEL
from tests.support.gateway_process import Gateway
from tests.support.helpers import WEATHER_TOOL, long_result, png_data_url

pytestmark = pytest.mark.engine

TOOL: Any = {
    "name": "get_weather",
    "description": WEATHER_TOOL["function"]["description"],
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}
FORCE: Any = {"type": "tool", "name": "get_weather"}
# Forced calls are greedy: sampled, vLLM's parser can leave a stray ':' in the call. (This SDK has no temperature.)
GREEDY = {"temperature": 0}
HI: Any = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def claude(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=f"{gateway.url}/api", api_key="sk-ml-local", max_retries=0, timeout=120) as c:
        yield c


def test_create_answers_text_with_usage(claude: anthropic.Anthropic, gateway: Gateway) -> None:
    m = claude.messages.create(model=MODEL, max_tokens=5, system="Be brief.", messages=HI)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("gen-") and m.model == MODEL
    assert m.stop_reason == "max_tokens"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.usage.output_tokens == 5 and m.usage.input_tokens > 0
    record = httpx.get(f"{gateway.url}/api/v1/generation", params={"id": m.id}).json()["data"]
    assert record["tokens_completion"] == 5 and record["tokens_prompt"] == m.usage.input_tokens


def test_stream_builds_the_same_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=8, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 8
    assert final.usage.input_tokens > 0


def test_tools_and_tool_results(claude: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "Weather in Rome?"}]
    first = claude.messages.create(
        model=MODEL, max_tokens=64, messages=ask, tools=[TOOL], tool_choice=FORCE, extra_body=GREEDY
    )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and set(use.input) == {"city", "days"}
    result: Any = [
        *ask,
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": '{"temp_c": 21}'}]},
    ]
    second = claude.messages.create(model=MODEL, max_tokens=3, messages=result, tools=[TOOL])
    longer: Any = [*result[:2], {"role": "user", "content": [{**result[2]["content"][0], "content": long_result()}]}]
    padded = claude.messages.create(model=MODEL, max_tokens=1, messages=longer, tools=[TOOL])
    assert padded.usage.input_tokens >= second.usage.input_tokens + 150  # the tool result was read


def test_streamed_tool_use(claude: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "Weather in Paris?"}]
    with claude.messages.stream(
        model=MODEL, max_tokens=64, messages=ask, tools=[TOOL], tool_choice=FORCE, extra_body=GREEDY
    ) as s:
        final = s.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert set(use.input) == {"city", "days"}
    assert final.stop_reason == "tool_use"


def test_an_image_block_and_token_counting(claude: anthropic.Anthropic) -> None:
    png = base64.b64encode(base64.b64decode(png_data_url().split(",", 1)[1])).decode()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
    ]
    with_image = claude.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": content}])
    text_only = claude.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "What?"}])
    assert with_image.usage.input_tokens >= text_only.usage.input_tokens + 96  # a 300x200 image is 96 tokens
    counted = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": content}])
    assert counted.input_tokens == with_image.usage.input_tokens


def test_what_cannot_be_served_is_a_clear_400(claude: anthropic.Anthropic) -> None:
    server_tool: Any = {"type": "web_search_20250305", "name": "web_search"}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model=MODEL, max_tokens=5, messages=HI, tools=[server_tool])
    assert "only client tools" in str(info.value)
