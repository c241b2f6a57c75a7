"""Reasoning end to end, on the real engine: a scaled-down Magistral Small 1.2 (tests/conftest.py `magistral`: its
v13 tokenizer with [THINK] and [/THINK], served under its own id with vLLM's reasoning parser and the gateway's budget
processor) answers chat, an image and a tool call with reasoning through OpenRouter chat, Anthropic's Messages and the
Responses API, each parsed by its official SDK, with the reasoning tokens counted.

Random weights rarely write [THINK]: the `think` preset makes it the first token (logit_bias) and sets a 3-token budget,
so the engine ends the reasoning after 3 tokens and the answer follows; a request's own fields win over the preset's.
`think-call` adds a named call to a strict weather tool and pushes [TOOL_CALLS] after the reasoning (Small 3.2's recipe,
tests/fleet/test_fleet_engines.py), for the APIs whose requests have no logit_bias.
What follows the engine's tokens (vLLM's parser, the budget, the gateway, the SDKs) is as served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openrouter import OpenRouter

from server.checkpoint.tiny import TINY_SYSTEM_PROMPT
from tests.support.gateway_process import Gateway
from tests.support.helpers import ONE_CALL, SDK_TIMEOUT_MS, STRICT_WEATHER, png_data_url

pytestmark = pytest.mark.engine

MAGISTRAL = "mistralai/magistral-small-2509"
THINK = "@preset/think"
THINK_CALL = "@preset/think-call"  # the same, then a named call to a strict weather tool (tests/conftest.py)
BUDGET = 3
CLAUDE_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_data_url()[22:]}}
IMAGE: Any = [
    {"type": "text", "text": "What is in the picture?"},
    {"type": "image_url", "image_url": {"url": png_data_url()}},
]


@pytest.fixture(scope="module")
def sdk(magistral: Gateway) -> Iterator[OpenRouter]:
    with OpenRouter(
        api_key="sk-or-v1-local", server_url=f"{magistral.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
    ) as client:
        yield client


@pytest.fixture(scope="module")
def oai(magistral: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{magistral.url}/api/v1", api_key="sk-local", max_retries=0, timeout=120) as c:
        yield c


def test_listed_as_a_reasoning_model(sdk: OpenRouter) -> None:
    listed = sdk.models.list()
    assert listed is not None
    (model,) = listed.result.data
    assert model.id == MAGISTRAL and model.reasoning is not None and model.reasoning.supports_max_tokens
    assert "reasoning" in model.supported_parameters


def test_chat_with_an_image_reasons_then_answers_sent_and_streamed(sdk: OpenRouter) -> None:
    asked: Any = {"model": THINK, "messages": [{"role": "user", "content": IMAGE}], "max_tokens": 8, "temperature": 0}
    r = sdk.chat.send(**asked)
    message, used = r.choices[0].message, r.usage
    assert message.reasoning and message.content and r.model == MAGISTRAL  # the preset names no model
    assert message.reasoning_details is not None
    (detail,) = message.reasoning_details
    assert detail.type == "reasoning.text" and detail.text == message.reasoning
    assert used is not None and used.completion_tokens == 8
    assert used.completion_tokens_details is not None and used.completion_tokens_details.reasoning_tokens == BUDGET

    chunks = list(sdk.chat.send(**asked, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.reasoning or "" for d in deltas) == message.reasoning  # temperature 0: the same answer
    assert "".join(d.content or "" for d in deltas) == message.content
    assert [d.reasoning_details[0].text for d in deltas if d.reasoning_details] == [
        d.reasoning for d in deltas if d.reasoning
    ]
    final = chunks[-1].usage
    assert final is not None and final.completion_tokens_details is not None
    assert final.completion_tokens_details.reasoning_tokens == BUDGET


def test_reasoning_left_out_or_turned_off(sdk: OpenRouter, oai: openai.OpenAI) -> None:
    """`exclude`: the model reasons (the tokens are counted) but the answer leaves it out; effort `none`: no
    reasoning at all, even with [THINK] pushed first."""
    hi: Any = [{"role": "user", "content": "Hi"}]
    hidden = oai.chat.completions.create(
        model=THINK, messages=hi, max_tokens=8, extra_body={"reasoning": {"max_tokens": BUDGET, "exclude": True}}
    )
    assert getattr(hidden.choices[0].message, "reasoning", None) is None and hidden.choices[0].message.content
    assert hidden.usage is not None and hidden.usage.completion_tokens_details is not None
    assert hidden.usage.completion_tokens_details.reasoning_tokens == BUDGET
    off = sdk.chat.send(model=THINK, messages=hi, max_tokens=8, reasoning={"effort": "none"})
    assert off.choices[0].message.reasoning is None and off.choices[0].message.content
    assert off.usage is not None and off.usage.model_dump()["completion_tokens_details"]["reasoning_tokens"] == 0


def test_the_models_own_system_prompt_comes_unless_the_request_brings_one(oai: openai.OpenAI) -> None:
    """The repository's SYSTEM_PROMPT.txt (make-tiny writes a stand-in) is the system message of a request that has
    none, as the card asks; not of one that brings its own, nor of one that asks for no reasoning. Counted by the
    engine's own tokenizer: the prompt tokens of the first equal those of the same text sent as the system message."""

    def prompt_tokens(messages: Any, **extra: Any) -> int:
        r = oai.chat.completions.create(model=MAGISTRAL, messages=messages, max_tokens=1, **extra)
        assert r.usage is not None
        return int(r.usage.prompt_tokens)

    hi: Any = [{"role": "user", "content": "Hi"}]
    defaulted = prompt_tokens(hi)
    assert defaulted == prompt_tokens([{"role": "system", "content": TINY_SYSTEM_PROMPT}, *hi])
    assert prompt_tokens([{"role": "system", "content": "Be brief."}, *hi]) < defaulted
    assert prompt_tokens(hi, extra_body={"reasoning": {"effort": "none"}}) < defaulted


def test_a_tool_call_after_reasoning(sdk: OpenRouter) -> None:
    """Reasoning first, then the call: the request's logit_bias (its own wins over the preset's) pushes [THINK], and
    [TOOL_CALLS] once the budget has ended the reasoning (Small 3.2's recipe, tests/fleet/test_fleet_engines.py)."""
    bias = {"34": 100, "9": 50}  # [THINK] before [TOOL_CALLS]
    force: Any = {"type": "function", "function": {"name": "get_weather"}}
    hi: Any = [{"role": "user", "content": "Weather in Rome?"}]
    r = sdk.chat.send(
        model=THINK, messages=hi, tools=[STRICT_WEATHER], tool_choice=force, **ONE_CALL | {"logit_bias": bias}
    )
    choice = r.choices[0]
    assert choice.message.reasoning and choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)


def test_messages_thinking_blocks_sent_and_streamed(magistral: Gateway) -> None:
    with anthropic.Anthropic(base_url=f"{magistral.url}/api", api_key="sk-local", max_retries=0, timeout=120) as c:
        asked: Any = {
            "model": THINK,
            "max_tokens": 8,
            "extra_body": {"temperature": 0},  # the SDK's create() no longer takes it; the API still does
            "thinking": {"type": "enabled", "budget_tokens": 2},  # the request's budget, not the preset's
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, CLAUDE_IMAGE]}],
        }
        sent = c.messages.create(**asked)
        thinking, text = sent.content
        assert thinking.type == "thinking" and thinking.thinking and thinking.signature == ""
        assert text.type == "text" and text.text
        with c.messages.stream(**asked) as stream:
            streamed = stream.get_final_message()
        assert [b.type for b in streamed.content] == ["thinking", "text"]
        assert streamed.content[0].thinking == thinking.thinking  # type: ignore[union-attr]
        off = c.messages.create(**asked | {"thinking": {"type": "disabled"}})
        assert [b.type for b in off.content] == ["text"]
        hi: Any = [{"role": "user", "content": "Weather in Rome?"}]
        called = c.messages.create(model=THINK_CALL, max_tokens=64, messages=hi)
        assert [b.type for b in called.content] == ["thinking", "tool_use"] and called.stop_reason == "tool_use"
        assert called.content[1].name == "get_weather"  # type: ignore[union-attr]


def test_responses_reasoning_items_sent_and_streamed(oai: openai.OpenAI) -> None:
    picture = [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": png_data_url()}]
    asked: Any = {
        "model": THINK,
        "input": [{"role": "user", "content": picture}],
        "max_output_tokens": 8,
        "temperature": 0,
    }
    sent = oai.responses.create(**asked)
    reasoning, message = sent.output
    assert reasoning.type == "reasoning" and reasoning.content and reasoning.content[0].text
    assert message.type == "message" and sent.output_text
    assert sent.usage is not None and sent.usage.output_tokens_details.reasoning_tokens == BUDGET
    # Cut at max_output_tokens, the stream ends `response.incomplete` (the SDK's stream helper waits for `completed`
    # only): its own event models, as it parses them.
    events = list(oai.responses.create(**asked, stream=True))
    assert "response.reasoning_text.delta" in [e.type for e in events]
    last = events[-1]
    assert last.type == "response.incomplete"
    streamed = last.response
    assert [i.type for i in streamed.output] == ["reasoning", "message"]
    assert streamed.output[0].content[0].text == reasoning.content[0].text
    off = oai.responses.create(**asked | {"reasoning": {"effort": "none"}})
    assert [i.type for i in off.output] == ["message"]
    called = oai.responses.create(model=THINK_CALL, input="Weather in Rome?", max_output_tokens=64)
    assert [i.type for i in called.output] == ["reasoning", "function_call"]
    assert called.output[1].name == "get_weather"  # type: ignore[union-attr]
