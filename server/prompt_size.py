"""Prompt sizes from an engine payload without tokenizing: an upper bound (to skip the tokenizer when a request
clearly fits) and a typical estimate (for admission's token accounting)."""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import InvalidRequest

# Upper bounds for the cheap pre-check: Tekken tokens are at least one byte; template tokens per message; one
# image at the model's maximum edge (1540 px: 55 rows of 55 tokens plus a break per row).
TEMPLATE_TOKENS_PER_MESSAGE = 8
MAX_IMAGE_TOKENS = 3080
BYTES_PER_TOKEN = 4


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
