"""Malformed requests to the other APIs (Anthropic Messages, OpenAI Responses) on a gateway without an engine: each
is a 400 in OpenRouter's error shape that says what is wrong, never a 500 (these were, before the translations
checked every block's shape and route-level validation errors became 400s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.served_app import gateway_settings, served_app

BODIES: dict[str, list[dict[str, Any]]] = {
    "/api/v1/messages": [
        {"max_tokens": 5, "messages": [{"role": "user", "content": ["str"]}]},
        {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
        {"max_tokens": 5, "system": ["x"], "messages": [{"role": "user", "content": "hi"}]},
        {
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": ["x"]}]}],
        },
        {"max_tokens": 5, "messages": [{"role": "assistant", "content": [5]}]},
        {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": 5, "input_schema": "x"}]},
        {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "metadata": {"user_id": {"a": 1}}},
        {
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "n", "input": "str"}]}],
        },
        {
            "max_tokens": 5,
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": 5, "name": None, "input": "str"}]}
            ],
        },
        # Each of these was a 500 that dropped the keep-alive connection (security review 2026-12, L1).
        {"max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "text", "text": None}]}]},
        {"max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "text", "text": ["a"]}]}]},
        {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": ["auto"]}},
        {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": {"a": 1}}]}]},
    ],
    "/api/v1/responses": [
        {"input": "hi", "text": {"format": "json"}},
        {"input": "hi", "text": "x"},
        {"input": [{"role": "user", "content": [5]}]},
        {"input": [{"type": "function_call", "call_id": 5, "name": None, "arguments": {"a": 1}}]},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]},
        {"input": "hi", "tools": [{"type": "function", "name": None}]},
        {"input": "hi", "tool_choice": {"type": "function"}},
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 5}]}]},
    ],
    "/api/v1/messages/count_tokens": [
        {"messages": [{"role": "user", "content": ["x"]}]},
    ],
}

CASES = [(path, body) for path, items in BODIES.items() for body in items]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served_app(gateway_settings()) as base:
        yield base


@pytest.mark.parametrize(("path", "body"), CASES)
def test_malformed_is_a_400_that_says_what(url: str, path: str, body: dict[str, Any]) -> None:
    with httpx.Client(timeout=30) as client:
        r = client.post(f"{url}{path}", json=body)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == 400 and error["message"]
        # The connection is kept: the next request on it is answered (a 500 used to reset it).
        assert client.get(f"{url}/health/live").status_code == 200
        assert r.headers.get("connection") != "close"
