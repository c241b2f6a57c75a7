"""Engine answers in OpenRouter's shape, without an engine: a forced tool call cut by max_tokens answered as OpenAI
answers it (the call with its arguments so far, `finish_reason: length`), not as the call's raw text in `content`;
a reasoning model's reasoning as `reasoning` and `reasoning_details`, its tokens counted; each parsed by the OpenRouter
SDK's own response model."""

from __future__ import annotations

from typing import Any

import pytest
from openrouter.components import ChatResult, ReasoningDetailText

from server.generation.outbound import Envelope, chat_response, cut_call, error_chunk
from server.generation.tool_ids import is_mistral_id

ENV = Envelope("gen-1-abcdefghijklmnopqrst", 1, "m", "Local")
TOOLS = frozenset({"get_weather", "get_time"})
USAGE = {"prompt_tokens": 4, "completion_tokens": 14, "total_tokens": 18}


def answer(message: dict[str, Any], finish: str = "length", usage: dict[str, Any] = USAGE) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant"} | message, "finish_reason": finish}],
        "usage": usage,
    }


@pytest.mark.parametrize(
    ("content", "arguments"),
    [
        ('[{"name":"get_weather","arguments":{"city', '{"city'),  # Small 3.1's JSON array (v7)
        (' [{"name": "get_weather", "arguments": {"city": "Ro', '{"city": "Ro'),
        ('[{"name":"get_weather"', ""),  # cut between the name and its arguments
        ('get_weather[ARGS]{"ci', '{"ci'),  # v11 and later (Small 3.2, Magistral)
    ],
)
def test_a_cut_forced_call_is_the_call_with_its_arguments_so_far(content: str, arguments: str) -> None:
    body = chat_response(answer({"content": content}), ENV, forced_tools=TOOLS)
    choice = ChatResult.model_validate(body).choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and is_mistral_id(call.id)
    assert call.function.arguments == (arguments or "{}")


def test_a_call_cut_inside_its_name_leaves_nothing_and_plain_answers_are_untouched() -> None:
    cut = chat_response(answer({"content": '[{"name":"get_we'}), ENV, forced_tools=TOOLS)["choices"][0]["message"]
    assert cut["content"] is None and "tool_calls" not in cut
    assert cut_call("Sure, the weather.") is None
    unforced = chat_response(answer({"content": '[{"name":"get_weather","arguments":{'}), ENV)
    assert unforced["choices"][0]["message"]["content"] == '[{"name":"get_weather","arguments":{'  # not asked for
    finished = chat_response(answer({"content": "text"}, finish="stop"), ENV, forced_tools=TOOLS)
    assert finished["choices"][0]["message"]["content"] == "text"
    # vLLM's v11 parser returns a cut call itself, its name cut too: not a call to any of the request's tools.
    v11_cut = {"content": "", "tool_calls": [{"id": "abcdefghi", "function": {"name": "get", "arguments": "{}"}}]}
    dropped = chat_response(answer(v11_cut), ENV, forced_tools=TOOLS)["choices"][0]["message"]
    assert dropped["content"] is None and "tool_calls" not in dropped


def test_reasoning_is_shown_typed_and_counted() -> None:
    usage = USAGE | {"completion_tokens_details": {"reasoning_tokens": 3}}
    body = chat_response(answer({"content": "Four.", "reasoning": "Two and two."}, "stop", usage), ENV)
    parsed = ChatResult.model_validate(body)
    message = parsed.choices[0].message
    assert message.reasoning == "Two and two." and message.content == "Four."
    (detail,) = message.reasoning_details or []
    assert isinstance(detail, ReasoningDetailText) and detail.text == "Two and two."
    assert parsed.usage is not None
    assert parsed.usage.model_dump()["completion_tokens_details"]["reasoning_tokens"] == 3
    plain = chat_response(answer({"content": "Four."}, "stop"), ENV)["choices"][0]["message"]
    assert plain["reasoning"] is None and "reasoning_details" not in plain  # OpenRouter: null, and omitted


def test_a_mid_stream_failure_names_its_type() -> None:
    failure = error_chunk(ENV, 502, "Engine stopped during generation", "provider_unavailable")
    assert failure["error"]["metadata"] == {"error_type": "provider_unavailable"}
