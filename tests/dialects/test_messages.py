"""Anthropic's Messages API translation without an engine: requests into chat requests (tool results before the
turn's text, images, tool choice), and chat streams into events that the Anthropic SDK's own models accept and its
own accumulator builds into the final message."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import BaseModel, ValidationError

from server.dialects.messages import MessagesRequest, from_chat, to_chat
from server.dialects.messages_stream import MessagesStream
from server.errors import InvalidRequest

EVENTS: dict[str, type[BaseModel]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(get_args(RawMessageStreamEvent)[0])
}
ENVELOPE = {"id": "gen-1-abc", "object": "chat.completion.chunk", "created": 1, "model": "m", "provider": "Local"}
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 2}}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps(ENVELOPE | {"choices": choices} | top)


def run(*events: bytes) -> tuple[list[dict[str, Any]], Message | None]:
    stream = MessagesStream()
    out = b"".join(stream.feed(e) for e in events)
    parsed: list[dict[str, Any]] = []
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for block in out.split(b"\n\n")[:-1]:
        if block.startswith(b":"):
            continue
        name, data = block.split(b"\n")
        event = orjson.loads(data[len(b"data: ") :])
        assert name == b"event: " + event["type"].encode()
        parsed.append(event)
        if event["type"] != "error":
            model = EVENTS[event["type"]].model_validate(event, strict=True)  # the SDK's own event models
            snapshot = accumulate_event(event=model, current_snapshot=snapshot, json_bufs=bufs)  # type: ignore[arg-type]
    return parsed, snapshot


def test_text_then_a_tool_call_build_the_message_the_sdk_expects() -> None:
    call = {"index": 0, "id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    events, final = run(
        b": OPENROUTER PROCESSING",
        chunk({"role": "assistant", "content": "Checking."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"content": ""}, finish="tool_calls"),
        chunk(usage=USAGE),
        b"data: [DONE]",
    )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert final is not None and final.stop_reason == "tool_use"
    text, tool = final.content
    assert text.type == "text" and text.text == "Checking."
    assert tool.type == "tool_use" and tool.id == "abcDEF123" and tool.input == {"a": 1}
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (7, 5, 2)


def test_a_cut_answer_stops_at_max_tokens_and_a_failure_is_an_error_event() -> None:
    _, cut = run(chunk({"content": "a"}, finish="length"), chunk(usage=USAGE), b"data: [DONE]")
    assert cut is not None and cut.stop_reason == "max_tokens"
    error = {"code": 502, "message": "Engine stopped during generation"}
    events, _ = run(chunk({"content": "a"}), chunk({"content": ""}, "error", error=error))
    assert [e["type"] for e in events][-2:] == ["content_block_stop", "error"]
    assert events[-1]["error"] == {"type": "api_error", "message": "Engine stopped during generation"}


def test_requests_become_chat_requests() -> None:
    req = MessagesRequest.model_validate(
        {
            "max_tokens": 9,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather in Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "…", "signature": "x"},
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21"}]},
                        {"type": "text", "text": "And tomorrow?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    ],
                },
            ],
            "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
        }
    )
    chat = to_chat(req).model_dump(exclude_none=True, by_alias=True)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assistant, tool, user = chat["messages"][2:]
    assert assistant["content"] == "Let me look."
    assert assistant["tool_calls"][0]["function"] == {"name": "w", "arguments": '{"city":"Rome"}'}
    assert tool["tool_call_id"] == "toolu_1"
    assert user["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBOR"
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["stop"] == ["END"] and chat["user"] == "u-1" and chat["max_tokens"] == 9


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
        {"messages": [{"role": "system", "content": "x"}]},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"tool_choice": {"type": "magic"}},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
    ],
)
def test_what_cannot_be_served_is_a_400(change: dict[str, Any]) -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]} | change
    with pytest.raises((InvalidRequest, ValidationError)):  # both are 400s (server/errors.py)
        to_chat(MessagesRequest.model_validate(body))


def test_a_chat_answer_becomes_a_message() -> None:
    chat = {
        "id": "gen-1-abc",
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    message = Message.model_validate(from_chat(chat), strict=True)
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"


def test_text_amid_a_tool_calls_arguments_waits_for_the_call_to_end() -> None:
    start = {"index": 0, "id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": ""}}
    _, final = run(
        chunk({"tool_calls": [start]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"content": "stray"}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        chunk({"content": ""}, finish="tool_calls"),
        chunk(usage=USAGE),
        b"data: [DONE]",
    )
    assert final is not None
    tool, text = final.content
    assert tool.type == "tool_use" and tool.input == {"a": 1}
    assert text.type == "text" and text.text == "stray"


def test_reasoning_is_a_thinking_block_before_the_answer() -> None:
    """A reasoning model's streamed reasoning: a thinking block (thinking_delta events, then the signature_delta
    Anthropic ends one with) the SDK's accumulator builds, then the text; unstreamed, the same blocks."""
    events, final = run(
        chunk({"role": "assistant", "content": "", "reasoning": "Let me", "reasoning_details": []}),
        chunk({"role": "assistant", "content": "", "reasoning": " think."}),
        chunk({"role": "assistant", "content": "Four."}, finish="stop"),
        chunk(usage=USAGE),
        b"data: [DONE]",
    )
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]
    assert final is not None
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think." and thinking.signature == ""
    assert text.type == "text" and text.text == "Four."
    answer = {"reasoning": "Let me think.", "content": "Four.", "role": "assistant"}
    chat = {"id": "gen-1", "model": "m", "choices": [{"message": answer, "finish_reason": "stop"}], "usage": USAGE}
    message = Message.model_validate(from_chat(chat), strict=True)
    assert [b.type for b in message.content] == ["thinking", "text"]


@pytest.mark.parametrize(
    ("thinking", "reasoning"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, {"max_tokens": 2048}),
        ({"type": "disabled"}, {"enabled": False}),
        ({"type": "adaptive"}, {"enabled": True}),
    ],
)
def test_thinking_asks_for_reasoning(thinking: dict[str, Any], reasoning: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "thinking"}]}]
    req = MessagesRequest.model_validate({"max_tokens": 9, "messages": messages, "thinking": thinking})
    chat = to_chat(req)
    assert chat.reasoning is not None and chat.reasoning.model_dump(exclude_none=True) == reasoning
    assert chat.messages[-1].content is None  # an earlier turn's thinking is not sent back


@pytest.mark.parametrize("thinking", [{"type": "enabled"}, {"type": "enabled", "budget_tokens": 0}, {"type": "x"}])
def test_thinking_without_a_budget_is_a_400(thinking: dict[str, Any]) -> None:
    req = MessagesRequest.model_validate({"max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]})
    with pytest.raises(InvalidRequest, match="thinking: "):
        to_chat(req.model_copy(update={"thinking": thinking}))
