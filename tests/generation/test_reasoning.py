"""What a request asks of a reasoning model, as the engine's fields: OpenRouter's `reasoning` object, its
`reasoning_effort` shorthand and `include_reasoning`; a budget, an effort's share of max_tokens (OpenRouter's rule),
no reasoning, or reasoning left out of the answer. A model that does not reason ignores them, as OpenRouter does, unless
the client demands every parameter be honoured. Bad values are 400s that name the field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from server.checkpoint.identity import DEFAULT, KNOWN
from server.engine.launcher import THINK_BUDGET
from server.errors import InvalidRequest
from server.generation.inbound import chat_payload
from server.generation.reasoning import Ask, chat_ask, effort_budget
from server.schemas.request import ChatRequest, Reasoning

MAGISTRAL = KNOWN["mistralai/Magistral-Small-2509"]


def ask(max_tokens: int = 10_000, **fields: Any) -> Ask:
    reasoning = Reasoning.model_validate(fields.pop("reasoning")) if "reasoning" in fields else None
    return chat_ask(reasoning, fields.get("reasoning_effort"), fields.get("include_reasoning"), max_tokens)


def test_the_fields_as_a_budget() -> None:
    assert ask() == Ask(None, False)  # nothing asked: the model reasons as it likes
    assert ask(reasoning={"max_tokens": 300}) == Ask(300)
    assert ask(reasoning={"effort": "high"}) == Ask(8000)  # 0.8 of max_tokens
    assert ask(reasoning_effort="low") == Ask(2000)
    assert ask(max_tokens=2000, reasoning={"effort": "minimal"}) == Ask(1024)  # never under 1024
    assert ask(max_tokens=1_000_000, reasoning={"effort": "xhigh"}) == Ask(128_000)  # nor over 128000
    assert ask(reasoning={"effort": "none"}) == Ask(0) and ask(reasoning={"enabled": False}) == Ask(0)
    assert ask(reasoning={"exclude": True}) == Ask(None, exclude=True)
    assert ask(include_reasoning=False) == Ask(None, exclude=True)
    assert ask(reasoning={"enabled": True}) == Ask(None)
    assert effort_budget("medium", 4096) == 2048


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reasoning": {"effort": "low"}, "reasoning_effort": "high"}, "must not conflict"),
        ({"reasoning": {"effort": "low", "max_tokens": 10}}, "set effort or max_tokens, not both"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort: one of"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort: one of"),
        ({"reasoning": {"max_tokens": -1}}, "reasoning.max_tokens"),
    ],
)
def test_bad_fields_are_400s(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ask(**fields)


def test_a_reasoning_models_payload_carries_the_budget_and_its_cards_sampling() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "reasoning": {"effort": "medium", "exclude": True}}
    payload, _ = chat_payload(ChatRequest.model_validate(body), "m", MAGISTRAL)
    assert payload["vllm_xargs"] == {THINK_BUDGET: 20480}  # half of the card's 40960-token answer
    assert payload["include_reasoning"] is False
    assert (payload["temperature"], payload["top_p"]) == (0.7, 0.95)
    asked = ChatRequest.model_validate(body | {"max_tokens": 4096, "top_p": 0.5, "temperature": 0})
    payload, _ = chat_payload(asked, "m", MAGISTRAL)
    assert payload["vllm_xargs"] == {THINK_BUDGET: 2048} and (payload["temperature"], payload["top_p"]) == (0, 0.5)


def test_a_model_that_does_not_reason_ignores_the_fields_unless_every_parameter_is_required() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "reasoning": {"effort": "high"}}
    payload, _ = chat_payload(ChatRequest.model_validate(body), "m", DEFAULT)
    assert "vllm_xargs" not in payload and "include_reasoning" not in payload and "top_p" not in payload
    strict = ChatRequest.model_validate(body | {"provider": {"require_parameters": True}})
    with pytest.raises(InvalidRequest, match="reasoning"):
        chat_payload(strict, "m", DEFAULT)
    chat_payload(strict, "m", MAGISTRAL)  # a reasoning model honours it


def test_a_reasoning_models_own_system_prompt_comes_first_unless_the_request_has_one() -> None:
    """Magistral's card asks for its repository's system prompt (it has the model reason in [THINK])."""
    card = replace(MAGISTRAL, system_prompt="Reason in [THINK].")
    hi = {"messages": [{"role": "user", "content": "Hi"}]}
    payload, _ = chat_payload(ChatRequest.model_validate(hi), "m", card)
    assert payload["messages"][0] == {"role": "system", "content": "Reason in [THINK]."}
    own = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    payload, _ = chat_payload(ChatRequest.model_validate(own), "m", card)
    assert [m["content"] for m in payload["messages"]] == ["Be brief.", "Hi"]
    off = hi | {"reasoning": {"effort": "none"}}
    payload, _ = chat_payload(ChatRequest.model_validate(off), "m", card)
    assert [m["role"] for m in payload["messages"]] == ["user"]
    payload, _ = chat_payload(ChatRequest.model_validate(hi), "m", replace(DEFAULT, system_prompt="x"))
    assert [m["role"] for m in payload["messages"]] == ["user"]  # only a reasoning model's
