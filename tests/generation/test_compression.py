"""Middle-out compression, counted with the real Tekken tokenizer of the tiny checkpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from server.errors import rewrite_context_error
from server.generation.compression import _middle_out_order, compress


@pytest.fixture(scope="module")
def count(tiny_model: Path) -> Any:
    tokenizer = MistralTokenizer.from_file(str(tiny_model / "tekken.json"))

    async def counter(messages: list[dict[str, Any]]) -> int:
        request: ChatCompletionRequest[Any] = ChatCompletionRequest.model_validate({"messages": messages})
        return len(tokenizer.encode_chat_completion(request).tokens)

    return counter


def conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "SYSTEM-CANARY keep me"}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"q{i} " + "word " * 50},
            {"role": "assistant", "content": f"a{i} " + "reply " * 50},
        ]
    return [*messages, {"role": "user", "content": "LAST-CANARY latest question"}]


def test_middle_out_order() -> None:
    assert _middle_out_order(5) == [2, 1, 3, 0, 4]
    assert _middle_out_order(1) == [0]
    assert sorted(_middle_out_order(8)) == list(range(8))


def test_drops_middle_turns_keeps_system_and_latest(count: Any) -> None:
    messages = conversation(20)
    full = asyncio.run(count(messages))
    out, tokens = asyncio.run(compress(messages, full // 2, count))
    assert tokens == asyncio.run(count(out))
    assert asyncio.run(count(out)) <= full // 2
    assert out[0]["content"] == "SYSTEM-CANARY keep me"
    assert out[-1]["content"] == "LAST-CANARY latest question"
    kept = [m["content"].split()[0] for m in out[1:-1]]
    # Whole turns (a user message and its answer) go together, from the middle: the ends survive.
    assert len(kept) % 2 == 0 and [k[0] for k in kept[::2]] == ["q"] * (len(kept) // 2)
    assert "q0" in kept and "q19" in kept and "q10" not in kept
    # Fewest removals: dropping one more turn than needed is not done.
    assert asyncio.run(count(out)) > full // 2 - 2 * 60


def test_truncates_the_longest_text_when_turns_are_not_enough(count: Any) -> None:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "HEAD " + "filler " * 2000 + " TAIL"}]
    out, tokens = asyncio.run(compress(messages, 500, count))
    assert tokens == asyncio.run(count(out))
    assert asyncio.run(count(out)) <= 500
    text = out[-1]["content"]
    assert text.startswith("HEAD") and text.endswith("TAIL") and "…" in text
    assert asyncio.run(count(out)) > 400  # kept as much as fits


def test_fitting_messages_are_untouched(count: Any) -> None:
    messages = conversation(2)
    out, _ = asyncio.run(compress(messages, 10_000, count))
    assert out is messages


def test_vllm_context_messages_rewritten() -> None:
    err = rewrite_context_error(
        "This model's maximum context length is 4096 tokens. However, your prompt contains "
        "5004 input tokens, which exceeds this limit even without any output tokens."
    )
    assert err is not None and err.status == 400
    assert err.message.startswith(
        "This endpoint's maximum context length is 4096 tokens. However, you requested "
        "about 5004 tokens (5004 of text input, 0 in the output)."
    )
    assert rewrite_context_error("something else") is None
