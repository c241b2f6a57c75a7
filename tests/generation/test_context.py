"""Requests that do not fit the served context: OpenRouter's 400, or middle-out compression that makes them fit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gateway_process import Gateway
from tests.support.helpers import post

pytestmark = pytest.mark.engine
CONTEXT = 4096  # cpu-tiny's max_model_len


def long_conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"Question {i}: " + "lorem ipsum dolor " * 40},
            {"role": "assistant", "content": f"Answer {i}: " + "sit amet " * 40},
        ]
    return [*messages, {"role": "user", "content": "Final question?"}]


def test_prompt_over_the_context_is_openrouters_400(gateway: Gateway) -> None:
    r = post(gateway.url, {"messages": [{"role": "user", "content": "hello " * 5000}], "max_tokens": 10})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith(
        f"This endpoint's maximum context length is {CONTEXT} tokens. However, you requested about "
    )
    assert "of text input, 10 in the output)" in message
    assert "context-compression plugin" in message


def test_prompt_plus_max_tokens_over_the_context_is_a_400(gateway: Gateway) -> None:
    r = post(gateway.url, {"messages": [{"role": "user", "content": "hello"}], "max_tokens": CONTEXT})
    assert r.status_code == 400
    assert f"{CONTEXT} in the output" in r.json()["error"]["message"]


@pytest.mark.parametrize("switch", [{"transforms": ["middle-out"]}, {"plugins": [{"id": "context-compression"}]}])
def test_middle_out_makes_a_long_conversation_fit(gateway: Gateway, switch: dict[str, Any]) -> None:
    messages = long_conversation(30)
    too_long = post(gateway.url, {"messages": messages, "max_tokens": 100})
    assert too_long.status_code == 400
    r = post(gateway.url, {"messages": messages, "max_tokens": 100} | switch)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] + 100 <= CONTEXT
    assert usage["prompt_tokens"] > CONTEXT // 2  # it dropped what it had to, not everything


def test_compression_disabled_explicitly(gateway: Gateway) -> None:
    r = post(
        gateway.url,
        {
            "messages": long_conversation(30),
            "max_tokens": 100,
            "plugins": [{"id": "context-compression", "enabled": False}],
            "transforms": [],
        },
    )
    assert r.status_code == 400
