"""A three-turn tool conversation with other providers' `call_…` ids, which Mistral's tokenizer would reject."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from server.settings import OPENROUTER_MODEL_ID
from tests.support.helpers import WEATHER_TOOL, long_result

pytestmark = pytest.mark.engine
FORCE = {"type": "function", "function": {"name": "get_weather"}}


def ask(api: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    # Greedy: a sampled forced call can carry a stray ':' in its name from vLLM's parser, which is not what this checks.
    completion: ChatCompletion = api.chat.completions.create(
        model=OPENROUTER_MODEL_ID, tools=[WEATHER_TOOL], temperature=0, **kwargs
    )
    return completion


def test_three_turn_tool_loop_with_foreign_ids(api: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "Weather in Rome for 2 days?"},
    ]
    # Turn 1: the model calls the tool.
    first = ask(api, messages=messages, tool_choice=FORCE, max_tokens=64)
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls
    call = first.choices[0].message.tool_calls[0]
    assert call.type == "function"
    # The client keeps the history with ids of its own, as clients moving from other providers do.
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9f8e7d6c5b4a3210fedcba98",
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9f8e7d6c5b4a3210fedcba98", "content": json.dumps({"temp_c": 21})},
        {"role": "user", "content": "And Paris?"},
    ]
    # Turn 2: another call, with the foreign id in the history.
    second = ask(api, messages=messages, tool_choice=FORCE, max_tokens=64)
    assert second.choices[0].message.tool_calls
    call2 = second.choices[0].message.tool_calls[0]
    assert call2.type == "function"
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call2.id,
                    "type": "function",
                    "function": {"name": call2.function.name, "arguments": call2.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call2.id, "content": json.dumps({"temp_c": 17})},
        {"role": "user", "content": "Summarise."},
    ]
    # Each call the server made has an id of its own, which a client sends back as it came (turn 3).
    assert call.id and call2.id and call.id != call2.id
    # Turn 3: a text answer over both tool results, one under a foreign id and one under the server's.
    third = ask(api, messages=messages, tool_choice="none", max_tokens=8)
    assert third.choices[0].message.content
    assert third.choices[0].message.tool_calls is None
    # Both results were read: either one made long makes the prompt longer by as much.
    for result in (2, 5):
        longer = [*messages[:result], {**messages[result], "content": long_result()}, *messages[result + 1 :]]
        padded = ask(api, messages=longer, tool_choice="none", max_tokens=1)
        assert padded.usage is not None and third.usage is not None
        assert padded.usage.prompt_tokens >= third.usage.prompt_tokens + 150, result
