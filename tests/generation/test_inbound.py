"""Property-based tests of request normalization: whatever a client sends, the gateway either refuses it with a
400 or hands the engine a payload with only engine fields, valid roles and Mistral-valid tool-call ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from server.checkpoint.identity import DEFAULT
from server.errors import InvalidRequest
from server.generation.inbound import chat_payload, resolve_images, tokenize_payload
from server.generation.tool_ids import is_mistral_id, to_mistral_id
from server.schemas.request import ChatRequest, TokenizeRequest

OPENROUTER_ONLY = {
    "models",
    "route",
    "provider",
    "plugins",
    "transforms",
    "usage",
    "debug",
    "session_id",
    "metadata",
    "user",
    "prediction",
    "reasoning",
    "include_reasoning",
    "verbosity",
    "modalities",
}
text = st.text(max_size=40)
ids = st.one_of(st.text(min_size=1, max_size=30), st.from_regex(r"call_[A-Za-z0-9]{24}", fullmatch=True))
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}),
    st.fixed_dictionaries({"type": st.sampled_from(["file", "input_audio", "video_url", "bogus"])}),
)
content = st.one_of(text, st.lists(part, max_size=3))
tool_call = st.fixed_dictionaries(
    {
        "id": ids,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": st.from_regex(r"[a-z_]{1,10}", fullmatch=True), "arguments": text}),
    }
)
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": content}),
    st.fixed_dictionaries({"role": st.just("user"), "content": content}, optional={"name": text}),
    st.fixed_dictionaries(
        {"role": st.just("assistant")},
        optional={"content": st.one_of(st.none(), text), "tool_calls": st.lists(tool_call, max_size=2)},
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "content": content, "tool_call_id": ids}),
    st.fixed_dictionaries({"role": text, "content": content}),
)
body = st.fixed_dictionaries(
    {"messages": st.lists(message, max_size=6)},
    optional={
        "stream": st.booleans(),
        "max_tokens": st.integers(-5, 10_000),
        "temperature": st.floats(-1, 3),
        "top_k": st.integers(-1, 100),
        "top_a": st.floats(0, 1),
        "seed": st.integers(),
        "stop": st.lists(text),
        "provider": st.fixed_dictionaries({}, optional={"require_parameters": st.booleans(), "sort": text}),
        "models": st.lists(text, max_size=2),
        "transforms": st.lists(text, max_size=2),
        "anything": text,
        "response_format": st.fixed_dictionaries({"type": st.sampled_from(["json_object", "text", "python"])}),
    },
)


async def fake_image(url: str, field: str) -> str:
    if not url.startswith("data:"):
        raise InvalidRequest(f"{field}: not fetched in this test")
    return "data:image/png;base64,AAAA"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body)
def test_any_body_is_refused_cleanly_or_normalized(raw: dict[str, Any]) -> None:
    try:
        req = ChatRequest.model_validate(raw)
        payload, images = chat_payload(req, "served", DEFAULT)
        asyncio.run(resolve_images(images, fake_image))
    except (ValidationError, InvalidRequest):
        return  # the gateway turns both into 400s in OpenRouter's shape
    assert not OPENROUTER_ONLY & payload.keys()
    assert "anything" not in payload
    assert payload["model"] == "served"
    assert {m["role"] for m in payload["messages"]} <= {"system", "user", "assistant", "tool"}
    for m in payload["messages"]:
        for call in m.get("tool_calls", []):
            assert is_mistral_id(call["id"])
        if m["role"] == "tool":
            assert is_mistral_id(m["tool_call_id"])
    assert ("stream_options" in payload) == bool(raw.get("stream"))
    assert payload.get("max_tokens") == raw.get("max_tokens")


@given(ids)
def test_tool_ids_map_deterministically_to_valid_ids(tool_call_id: str) -> None:
    mapped = to_mistral_id(tool_call_id)
    assert is_mistral_id(mapped)
    assert to_mistral_id(tool_call_id) == mapped
    assert to_mistral_id(mapped) == mapped  # already valid ids pass unchanged


def test_no_image_is_fetched_for_a_request_that_fails_validation() -> None:
    """Found by hypothesis: an invalid part after an image left the image's fetch coroutine created and never run."""
    fetched: list[str] = []

    async def resolve(url: str, field: str) -> str:
        fetched.append(url)
        return "data:image/png;base64,AAAA"

    req = ChatRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                        {"type": "file"},
                    ],
                }
            ]
        }
    )
    with pytest.raises(InvalidRequest, match="'file' parts are not supported"):
        chat_payload(req, "served", DEFAULT)  # fails before any image is even listed for fetching
    assert fetched == []


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 50}, 50),
        ({"max_tokens": 100, "max_completion_tokens": 50}, 50),  # the newer name wins, as at OpenAI
        ({}, None),
    ],
)
def test_the_output_limit_reaches_the_engine_as_max_tokens(fields: dict[str, Any], sent: int | None) -> None:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})
    payload, _ = chat_payload(req, "served", DEFAULT)
    assert payload.get("max_tokens") == sent
    assert "max_completion_tokens" not in payload


def test_a_tool_history_to_tokenize_carries_no_null_content() -> None:
    """vLLM's /tokenize refuses an assistant message with tool calls and `content: null` (its chat route takes it)."""
    call = {"id": "call_abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "done"},
    ]
    payload, _ = tokenize_payload(TokenizeRequest(messages=messages), "m")
    assistant = payload["messages"][1]
    assert "content" not in assistant and assistant["tool_calls"][0]["id"] == to_mistral_id("call_abc")
    assert payload["messages"][2]["tool_call_id"] == to_mistral_id("call_abc")


def test_service_tiers_become_the_engines_priority_and_fast_is_priority() -> None:
    """OpenRouter's tiers as vLLM's request priority (the engines run `--scheduling-policy priority`): `priority` and
    its 2026 alias `fast` first, `flex` last, the others as they come; an unknown tier is refused by the schema."""

    def priority(tier: str | None) -> Any:
        req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "Hi"}], "service_tier": tier})
        return chat_payload(req, "served", DEFAULT)[0].get("priority")

    assert priority("fast") == priority("priority") == priority("ultrafast") == -1  # no faster tier here
    assert priority("flex") == 1
    assert priority("auto") is priority("default") is priority(None) is None
    with pytest.raises(ValidationError, match="service_tier"):
        priority("turbo")
