"""The Responses API translation without an engine: requests into chat requests, and chat streams (as the chat path
writes them) into Responses events that the OpenAI SDK's own models accept, in an order that builds the final
response: text, parallel tool calls, a mid-stream failure."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from server.dialects.responses import ResponsesRequest, from_chat, to_chat
from server.dialects.responses_stream import ResponsesStream
from server.errors import InvalidRequest

# The OpenAI SDK's model for each event type (its union is discriminated by `type` only in the SDK's own parser).
EVENTS: dict[str, type[BaseModel]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(get_args(ResponseStreamEvent)[0])
}
ENVELOPE = {"id": "gen-1-abc", "object": "chat.completion.chunk", "created": 1, "model": "m", "provider": "Local"}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps(ENVELOPE | {"choices": choices} | top)


def run(req: ResponsesRequest, *events: bytes) -> list[dict[str, Any]]:
    stream = ResponsesStream(req)
    out = b"".join(stream.feed(e) for e in events)
    parsed = []
    for block in out.split(b"\n\n")[:-1]:
        if block.startswith(b":"):  # a keep-alive comment, passed on
            continue
        name, data = block.split(b"\n")
        event = orjson.loads(data[len(b"data: ") :])
        assert name == b"event: " + event["type"].encode()
        EVENTS[event["type"]].model_validate(event, strict=True)
        parsed.append(event)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    return parsed


USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12, "cost": 0}


def test_text_then_parallel_tool_calls() -> None:
    call = {"index": 0, "id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    events = run(
        ResponsesRequest(input="hi"),
        b": OPENROUTER PROCESSING",
        chunk({"role": "assistant", "content": "Let me "}),
        chunk({"content": "check."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "xyz987654", "function": {"name": "g", "arguments": "{}"}}]}),
        chunk({"content": ""}, finish="tool_calls"),
        chunk(usage=USAGE),
        b"data: [DONE]",
    )
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    final = Response.model_validate(events[-1]["response"])
    assert kinds[-1] == "response.completed" and final.status == "completed"
    message, first, second = final.output
    assert message.type == "message" and message.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert (first.type, first.call_id, first.arguments) == ("function_call", "abcDEF123", '{"a":1}')  # type: ignore[union-attr]
    assert (second.name, second.arguments) == ("g", "{}")  # type: ignore[union-attr]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert added == done == [0, 1, 2]
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)


def test_a_cut_answer_is_incomplete_and_a_failure_is_failed() -> None:
    cut = run(
        ResponsesRequest(input="hi"), chunk({"content": "a"}, finish="length"), chunk(usage=USAGE), b"data: [DONE]"
    )
    assert cut[-1]["type"] == "response.incomplete"
    assert cut[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    error = {"code": 502, "message": "Engine stopped during generation"}
    failed = run(ResponsesRequest(input="hi"), chunk({"content": "a"}), chunk({"content": ""}, "error", error=error))
    assert failed[-1]["type"] == "response.failed"
    assert failed[-1]["response"]["error"]["message"] == "Engine stopped during generation"


def test_requests_become_chat_requests() -> None:
    req = ResponsesRequest.model_validate(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Use metric units."},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "21"},
                {"type": "reasoning", "summary": []},
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "max_output_tokens": 9,
        }
    )
    chat = to_chat(req).model_dump(exclude_none=True, by_alias=True)
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "developer", "user", "assistant", "tool"]
    assert [c["id"] for c in chat["messages"][3]["tool_calls"]] == ["c1", "c2"]  # one turn, two calls
    assert chat["tools"][0]["function"]["name"] == "w" and chat["tool_choice"]["function"]["name"] == "w"
    assert chat["response_format"]["json_schema"]["name"] == "x" and chat["max_tokens"] == 9


@pytest.mark.parametrize(
    "body",
    [
        {"input": "hi", "store": True},
        {"input": "hi", "previous_response_id": "gen-1"},
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        {"input": "hi", "tools": [{"type": "file_search"}]},
        {"input": [{"role": "tool", "content": "x"}]},
    ],
)
def test_what_cannot_be_served_is_a_400(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        to_chat(ResponsesRequest.model_validate(body))


def test_a_chat_answer_becomes_a_response() -> None:
    chat = {
        "id": "gen-1-abc",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE | {"prompt_tokens_details": {"cached_tokens": 3}},
    }
    response = Response.model_validate(from_chat(ResponsesRequest(input="hi"), chat))
    assert response.status == "completed" and response.output[0].type == "function_call"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 3


def test_text_amid_a_calls_arguments_waits_for_the_call_to_end() -> None:
    start = {"index": 0, "id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
    events = run(
        ResponsesRequest(input="hi"),
        chunk({"tool_calls": [start]}),
        chunk({"content": "stray"}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        chunk({"content": ""}, finish="tool_calls"),
        chunk(usage=USAGE),
        b"data: [DONE]",
    )
    final = Response.model_validate(events[-1]["response"])
    call, message = final.output
    assert call.type == "function_call" and call.arguments == '{"a":1}'
    assert message.type == "message" and message.content[0].text == "stray"  # type: ignore[union-attr]


def test_reasoning_is_an_item_before_the_message() -> None:
    """Streamed reasoning: a reasoning item (content part `reasoning_text`, its deltas and done events), closed
    before the message opens; the final response lists both, with the reasoning tokens counted in usage."""
    req = ResponsesRequest.model_validate({"input": "Hi", "reasoning": {"effort": "low"}})
    used = USAGE | {"completion_tokens_details": {"reasoning_tokens": 3}}
    events = run(
        req,
        chunk({"role": "assistant", "content": "", "reasoning": "Let me"}),
        chunk({"role": "assistant", "content": "", "reasoning": " think."}),
        chunk({"role": "assistant", "content": "Four."}, finish="stop"),
        chunk(usage=used),
        b"data: [DONE]",
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:6] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
    ]
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    final = Response.model_validate(events[-1]["response"], strict=True)
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "Let me think." and message.type == "message"
    assert final.reasoning is not None and final.reasoning.effort == "low"
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 3
    answer = {"reasoning": "Let me think.", "content": "Four.", "role": "assistant"}
    chat = {"id": "gen-1", "created": 1, "model": "m", "choices": [{"message": answer, "finish_reason": "stop"}]}
    unstreamed = Response.model_validate(from_chat(req, chat | {"usage": used}), strict=True)
    assert [item.type for item in unstreamed.output] == ["reasoning", "message"]


def test_reasoning_effort_asks_for_reasoning_and_earlier_reasoning_is_dropped() -> None:
    earlier = {"type": "reasoning", "id": "rs_1", "summary": []}
    req = ResponsesRequest.model_validate(
        {"input": [earlier, {"role": "user", "content": "Hi"}], "reasoning": {"effort": "none"}}
    )
    chat = to_chat(req)
    assert chat.reasoning is not None and chat.reasoning.effort == "none" and len(chat.messages) == 1
