"""Engine responses and stream chunks in OpenRouter's shape (shared/docs/openrouter-api.md §4-§5).

The rule for every field: what OpenRouter omits is omitted, never sent as null, and null only where OpenRouter
itself sends null. OpenRouter's SDKs parse strictly (a null where they expect a string or nothing fails the whole
call); the tests parse every kind of answer with both official SDKs (tests/api/test_openrouter_sdk*.py), so an SDK
release that demands more fails there first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from server.generation.tool_ids import new_mistral_id

FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "error"}


@dataclass(frozen=True)
class Pricing:
    """USD per token, as OpenRouter's pricing strings."""

    prompt: Decimal
    completion: Decimal

    @classmethod
    def from_strings(cls, prompt: str, completion: str) -> Pricing:
        return cls(Decimal(prompt), Decimal(completion))


@dataclass(frozen=True)
class Envelope:
    """What every response of one generation carries."""

    id: str
    created: int
    model: str  # the id the client asked for, echoed
    provider: str
    pricing: Pricing = Pricing(Decimal(0), Decimal(0))  # answers from elsewhere: not priced here


def finish_reason(native: str | None, has_tool_calls: bool) -> str | None:
    """OpenRouter's normalized finish reason. vLLM says "stop" after a forced tool call; clients expect
    "tool_calls" there."""
    if native is None:
        return None
    if has_tool_calls and native in ("stop", "tool_calls"):
        return "tool_calls"
    if native in FINISH_REASONS:
        return native
    return "error" if native == "abort" else "stop"


def usage(raw: dict[str, Any] | None, pricing: Pricing) -> dict[str, Any]:
    raw = raw or {}
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    cached = int((raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    prompt_cost = pricing.prompt * prompt
    completion_cost = pricing.completion * completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": float(prompt_cost + completion_cost),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0, "video_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": float(prompt_cost),
            "upstream_inference_completions_cost": float(completion_cost),
        },
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens(raw), "image_tokens": 0},
    }


def reasoning_tokens(raw_usage: dict[str, Any]) -> int:
    """The engine's count (vLLM 0.32 and later report it for a model with a reasoning parser; 0.22 does not)."""
    return int((raw_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)


def reasoning_text(raw: dict[str, Any]) -> str | None:
    """A message's or delta's reasoning (`reasoning_content`: vLLM's name before `reasoning`)."""
    return raw.get("reasoning") or raw.get("reasoning_content") or None


def reasoning_details(text: str) -> list[dict[str, Any]]:
    """OpenRouter's typed form of the same text (a model whose reasoning is plain text: `format` unknown)."""
    return [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]


# A forced call cut by max_tokens, as vLLM leaves it in `content` when its parser cannot read it: 3.1's JSON array
# (`[{"name":"f","arguments":{"ci`) or v11's `f[ARGS]{"ci` (its [TOOL_CALLS] dropped as a special token).
_CUT_JSON_CALL = re.compile(r'\s*\[?\s*\{\s*"name"\s*:\s*"([^"\\]+)"\s*(?:,\s*"arguments"\s*:\s*)?(.*)', re.S)
_CUT_V11_CALL = re.compile(r"\s*(?:\[TOOL_CALLS\])?\s*([A-Za-z0-9_.-]+)\s*\[ARGS\](.*)", re.S)


def forced_tools(payload: dict[str, Any]) -> frozenset[str]:
    """The names of the engine payload's tools when its tool_choice forces a call (`required` or named)."""
    if payload.get("tool_choice") in (None, "auto", "none"):
        return frozenset()
    return frozenset(t["function"]["name"] for t in payload.get("tools") or [])


def cut_call(content: str) -> dict[str, Any] | None:
    """The call a forced tool call cut short had begun, with its arguments so far, as OpenAI answers one; None while
    even its name was not complete."""
    match = _CUT_JSON_CALL.fullmatch(content) or _CUT_V11_CALL.fullmatch(content)
    if match is None:
        return None
    name, arguments = match.groups()
    return {"id": new_mistral_id(), "type": "function", "function": {"name": name, "arguments": arguments.lstrip()}}


def _cut(raw: dict[str, Any], tools: frozenset[str]) -> dict[str, Any]:
    """A forced call cut by max_tokens: the call begun, if its name is complete (one of the request's `tools`).
    vLLM's v11 parser returns such a call itself, cut names included (`get` for `get_weather`)."""
    calls = raw.get("tool_calls") or []
    if not calls and isinstance(raw.get("content"), str):
        calls = [call] if (call := cut_call(raw["content"])) else []
    named = [c for c in calls if c["function"]["name"] in tools]
    return raw | {"content": None, "tool_calls": named}


def _message(raw: dict[str, Any], cut_forced: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`cut_forced`: the request forced a call to one of these tools and the answer was cut by max_tokens."""
    if cut_forced:
        raw = _cut(raw, cut_forced)
    reasoning = reasoning_text(raw)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": raw.get("content"),
        "refusal": None,
        "reasoning": reasoning,
    }
    if reasoning is not None:
        message["reasoning_details"] = reasoning_details(reasoning)
    if raw.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"},
            }
            for c in raw["tool_calls"]
        ]
    return message


def chat_response(raw: dict[str, Any], env: Envelope, forced_tools: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`forced_tools`: the request's tool names, when its tool_choice was `required` or a named function."""
    choices = []
    for choice in raw.get("choices", []):
        native = choice.get("finish_reason")
        message = _message(choice.get("message") or {}, forced_tools if native == "length" else frozenset())
        choices.append(
            {
                "logprobs": choice.get("logprobs"),
                "finish_reason": finish_reason(native, "tool_calls" in message),
                "native_finish_reason": native,
                "index": choice.get("index", 0),
                "message": message,
            }
        )
    return {
        "id": env.id,
        "provider": env.provider,
        "model": env.model,
        "object": "chat.completion",
        "created": env.created,
        "choices": choices,
        "system_fingerprint": None,
        "usage": usage(raw.get("usage"), env.pricing),
    }


def completion_response(raw: dict[str, Any], env: Envelope) -> dict[str, Any]:
    choices = [
        {
            "text": c.get("text", ""),
            "index": c.get("index", 0),
            "logprobs": c.get("logprobs"),
            "finish_reason": finish_reason(c.get("finish_reason"), False),
            "native_finish_reason": c.get("finish_reason"),
        }
        for c in raw.get("choices", [])
    ]
    return {
        "id": env.id,
        "provider": env.provider,
        "model": env.model,
        "object": "text_completion",
        "created": env.created,
        "choices": choices,
        "system_fingerprint": None,
        "usage": usage(raw.get("usage"), env.pricing),
    }


def chunk(env: Envelope, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A streamed chunk. No `system_fingerprint`: OpenRouter's TypeScript SDK takes a string or nothing there, and a
    null failed every stream (the answers, where null is what it expects, keep it)."""
    return {
        "id": env.id,
        "provider": env.provider,
        "model": env.model,
        "object": "chat.completion.chunk",
        "created": env.created,
        "choices": choices,
        **extra,
    }


def error_chunk(
    env: Envelope, status: int, message: str, error_type: str, availability: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure after the first token: HTTP already said 200, so the error travels in the stream."""
    choice = {
        "index": 0,
        "delta": {"content": ""},
        "finish_reason": "error",
        "native_finish_reason": None,
        "logprobs": None,
    }
    error = {"code": status, "message": message, "metadata": {"error_type": error_type}}
    return chunk(env, [choice], error=error | ({"availability": availability} if availability else {}))
