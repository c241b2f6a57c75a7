"""The response-healing plugin: an answer asked for as JSON (`json_object` or `json_schema`) that is not valid JSON is
repaired (markdown fences, trailing prose, unclosed brackets, trailing commas) with json-repair. Non-streamed answers
only, as on OpenRouter."""

from __future__ import annotations

from typing import Any

import orjson
from json_repair import repair_json


def heal(answer: dict[str, Any]) -> dict[str, Any]:
    """The chat answer with each choice's content made valid JSON (content that already is stays as it was)."""
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        content = message.get("content")
        if not isinstance(content, str):
            continue
        try:
            orjson.loads(content)
        except orjson.JSONDecodeError:
            repaired = repair_json(content, ensure_ascii=False)
            if repaired:  # nothing JSON-like at all: the answer stays as it came
                message["content"] = repaired
    return answer
