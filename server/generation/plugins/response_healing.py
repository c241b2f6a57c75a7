"""The response-healing plugin: an answer asked for as JSON (`json_object` or `json_schema`) that is not valid JSON is
repaired (markdown fences, trailing prose, unclosed brackets, trailing commas) with json-repair. Non-streamed answers
only, as on OpenRouter.

The answer is the model's, so it is hostile input too: json-repair is slow per character on some strings and raises
on deep nesting. Healing runs after the generation is recorded and charged, off the event loop, only on answers up to
MAX_HEAL_CHARS; whatever cannot be healed is returned as it was generated."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from json_repair import repair_json

# json-repair takes up to about 0.4 ms per character on hostile strings: at most a few seconds of one thread.
MAX_HEAL_CHARS = 16_384


async def heal(answer: dict[str, Any]) -> dict[str, Any]:
    """The chat answer with each choice's content made valid JSON where it can be (in a thread)."""
    return await asyncio.to_thread(heal_now, answer)


def heal_now(answer: dict[str, Any]) -> dict[str, Any]:
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str) and len(content) <= MAX_HEAL_CHARS:
            message["content"] = _repaired(content)
    return answer


def _repaired(content: str) -> str:
    """Valid JSON stays as it is; what json-repair cannot mend, or finds nothing JSON-like in, stays as it came."""
    try:
        orjson.loads(content)
        return content
    except orjson.JSONDecodeError:
        pass
    try:
        repaired = repair_json(content, ensure_ascii=False)
    except Exception:  # ValueError past its nesting limit, RecursionError, or any other failure on hostile input
        return content
    return repaired if isinstance(repaired, str) and repaired else content
