"""How big a request is before the engine counts it: a cheap upper bound of its prompt (to skip the tokenizer when it
clearly fits the context), a typical estimate, and what admission holds for it (`demand`)."""

from __future__ import annotations

from typing import Any

import orjson

from server.access.admission import Demand
from server.errors import InvalidRequest

# Upper bounds for the cheap pre-check: Tekken tokens are at least one byte; template tokens per message; one
# image at the model's maximum edge (1540 px: 55 rows of 55 tokens plus a break per row).
TEMPLATE_TOKENS_PER_MESSAGE = 8
MAX_IMAGE_TOKENS = 3080
BYTES_PER_TOKEN = 4
TYPICAL_OUTPUT_TOKENS = 1024


def typical_output(limit: int | None, context: int) -> int:
    """The answer to plan for: `max_tokens`, or without it a typical answer (at most a quarter of the context)."""
    return limit or min(TYPICAL_OUTPUT_TOKENS, context // 4)


def _prompt_bytes(payload: dict[str, Any]) -> tuple[int, int]:
    """(UTF-8 bytes of text, including tools and template overhead; number of images) of an engine payload."""
    if "prompt" in payload:
        return _json_len(payload["prompt"]), 0
    total, images = 32 + _json_len(payload.get("tools") or []), 0
    for message in payload["messages"]:
        total += TEMPLATE_TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    total += len(part["text"].encode())
                else:
                    images += 1
        for call in message.get("tool_calls") or []:
            total += _json_len(call)
    return total, images


def _json_len(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits in a tool's JSON schema
        raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc


def prompt_upper_bound(payload: dict[str, Any]) -> int:
    """Never below the real count: a Tekken token is at least one byte."""
    text, images = _prompt_bytes(payload)
    return text + images * MAX_IMAGE_TOKENS


def prompt_estimate(payload: dict[str, Any]) -> int:
    """A typical count for admission: about four bytes per token, images at their largest."""
    text, images = _prompt_bytes(payload)
    return text // BYTES_PER_TOKEN + images * MAX_IMAGE_TOKENS


def sequences(payload: dict[str, Any]) -> int:
    """How many sequences the engine runs for a payload: one per prompt of a legacy prompt list, times `n`."""
    prompt = payload.get("prompt")
    prompts = len(prompt) if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else 1
    return prompts * max(payload.get("n") or 1, payload.get("best_of") or 1)


def demand(
    payload: dict[str, Any], context: int, price_prompt: float, price_completion: float, extra_prompt: int = 0
) -> Demand:
    """What admission holds for a payload: typically its estimate with a typical answer; at worst every sequence
    running to `max_tokens`, or to the end of the context when there is none (vLLM's default). `extra_prompt`: tokens
    the payload does not hold yet (documents still to be read)."""
    prompt, runs = prompt_estimate(payload) + extra_prompt, sequences(payload)
    limit = payload.get("max_tokens")
    typical = typical_output(limit, context)
    worst = limit or max(1, context - prompt // runs)
    return Demand(
        tokens=prompt + typical * runs,
        worst=prompt + worst * runs,
        cost=prompt * price_prompt + worst * runs * price_completion,
    )


def request_demand(body: dict[str, Any], output_limit: int | None, context: int) -> Demand:
    """`demand` for a client's own body (a request for the hosted upstream, whose prices and context are its own:
    the local context stands in for the worst case)."""
    prompt = _json_len(body.get("messages") or body.get("prompt") or "") // BYTES_PER_TOKEN
    typical = typical_output(output_limit, context)
    return Demand(tokens=prompt + typical, worst=prompt + (output_limit or context))
