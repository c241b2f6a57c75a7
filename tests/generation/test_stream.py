"""The chat stream's shaping of engine chunks, without an engine: a streamed tool call's arguments start at their
JSON object and its name is bare (vLLM 0.32's Mistral parser sometimes streams a stray `:` before the object, and for a
v11 tokenizer the whitespace the grammar allows before the name and the object)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openrouter.components import ChatStreamChunk

from server.generation.outbound import Envelope, Pricing, error_chunk
from server.generation.stream import ChunkShaper, StreamOutcome, relay, shaper_for

ENV = Envelope("gen-1-abcdefghijklmnopqrst", 1, "m", "Local", Pricing.from_strings("0", "0"))


def engine_chunk(index: int, arguments: str, name: str | None = None) -> bytes:
    function: dict[str, Any] = {"arguments": arguments} | ({"name": name} if name else {})
    call = {"index": index, "type": "function", "function": function} | ({"id": f"id{index}"} if name else {})
    delta = {"tool_calls": [call]}
    return orjson.dumps({"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def streamed_arguments(*chunks: bytes) -> dict[int, str]:
    shaper = ChunkShaper(ENV, StreamOutcome(), text_completion=False)
    found: dict[int, str] = {}
    for c in chunks:
        shaped = shaper.shape(orjson.loads(c))
        for call in (shaped or {"choices": [{"delta": {}}]})["choices"][0]["delta"].get("tool_calls", []):
            found[call["index"]] = found.get(call["index"], "") + call["function"].get("arguments", "")
    return found


@pytest.mark.parametrize(
    "pieces",
    [
        [":{", '"a":1', "}"],  # as vLLM streamed it
        [":", '{"a"', ":1}"],
        ["", ' {"a":1}'],
        ["\t\t  ", "\n", '{"a":', ' "b"}'],  # as vLLM streams Small 3.2's: whitespace in the object is kept
        ['{"a":', '{"b":":"}}'],  # braces and colons inside the object are the object's
    ],
)
def test_a_calls_streamed_arguments_start_at_their_object(pieces: list[str]) -> None:
    chunks = [engine_chunk(0, "", name="f"), *(engine_chunk(0, p) for p in pieces)]
    arguments = streamed_arguments(*chunks)[0]
    assert isinstance(json.loads(arguments), dict)
    joined = "".join(pieces)
    assert arguments == joined[joined.index("{") :]


def test_a_streamed_calls_name_is_bare() -> None:
    shaper = ChunkShaper(ENV, StreamOutcome(), text_completion=False)
    shaped = shaper.shape(orjson.loads(engine_chunk(0, "\t", name="\t\t\tget_weather")))
    assert shaped is not None
    call = shaped["choices"][0]["delta"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": ""}


def test_each_call_of_a_parallel_pair_is_repaired_on_its_own() -> None:
    found = streamed_arguments(
        engine_chunk(0, ":{", name="f"), engine_chunk(0, "}"), engine_chunk(1, ":{", name="g"), engine_chunk(1, "}")
    )
    assert found == {0: "{}", 1: "{}"}


def cut_at_the_end(name: str) -> bytes:
    """vLLM 0.32's last chunk of a forced call on a v11 tokenizer cut by max_tokens before its `[ARGS]` (recorded on
    the scaled-down Small 3.2): the name so far, no arguments, `finish_reason: length`."""
    call = {"id": "GyxUMiCxm", "type": "function", "index": 0, "function": {"name": name, "arguments": ""}}
    choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "length"}
    return orjson.dumps({"id": "x", "choices": [choice]})


@pytest.mark.parametrize("name", ["", "get", "get_", " contr"])
def test_a_forced_call_cut_inside_its_name_is_no_call_when_streamed_either(name: str) -> None:
    """As unstreamed (tests/generation/test_outbound.py): no call to a function the client does not have."""
    shaper = ChunkShaper(ENV, StreamOutcome(), text_completion=False, forced=frozenset({"get_weather"}))
    shaped = shaper.shape(orjson.loads(cut_at_the_end(name)))
    assert shaped is not None
    (choice,) = shaped["choices"]
    assert "tool_calls" not in choice["delta"] and choice["finish_reason"] == "length"
    ChatStreamChunk.model_validate(shaped)


def test_a_forced_calls_whole_name_streams_and_unforced_calls_are_left_as_they_come() -> None:
    forced = ChunkShaper(ENV, StreamOutcome(), text_completion=False, forced=frozenset({"get_weather"}))
    shaped = forced.shape(orjson.loads(cut_at_the_end("get_weather")))
    assert shaped is not None and shaped["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    unforced = ChunkShaper(ENV, StreamOutcome(), text_completion=False)
    shaped = unforced.shape(orjson.loads(cut_at_the_end("get")))
    assert shaped is not None and shaped["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get"


def test_a_dropped_calls_later_deltas_are_dropped_with_it() -> None:
    shaper = ChunkShaper(ENV, StreamOutcome(), text_completion=False, forced=frozenset({"f"}))
    shaped = [shaper.shape(orjson.loads(c)) for c in (engine_chunk(0, "", name="g"), engine_chunk(0, '{"a":1}'))]
    assert shaped == [None, None] and not shaper.saw_tool_calls


def test_a_mid_stream_error_and_the_usage_chunk_parse_with_the_openrouter_sdk() -> None:
    """The official SDK's own models for streamed chunks: what a failure after the first token, and the final usage
    chunk, look like on the wire."""
    failure = error_chunk(ENV, 502, "Engine stopped during generation", "provider_unavailable")
    parsed = ChatStreamChunk.model_validate(orjson.loads(orjson.dumps(failure)))
    assert parsed.error is not None and parsed.error.code == 502
    assert parsed.choices[0].finish_reason == "error"
    shaper = ChunkShaper(ENV, StreamOutcome(), text_completion=False)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    final = shaper.shape({"id": "x", "choices": [], "usage": usage})
    assert final is not None
    last = ChatStreamChunk.model_validate(orjson.loads(orjson.dumps(final)))
    assert last.usage is not None and last.usage.total_tokens == 5 and last.choices == []


def test_a_stream_whose_engine_is_always_ahead_still_lets_other_requests_in() -> None:
    """Reads that find data waiting never suspend (an engine ahead of the relay, on a busy machine): the stream must
    still give the event loop turns, or no other request is served until it ends."""
    reads = 20000

    async def engine() -> AsyncIterator[bytes]:
        for i in range(reads):
            delta = {"content": f" tok{i}"}
            yield b"data: " + orjson.dumps({"id": "x", "choices": [{"index": 0, "delta": delta}]}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def run() -> list[int]:
        relayed, seen = 0, []
        done = asyncio.Event()

        async def other_request() -> None:
            while not done.is_set():
                seen.append(relayed)
                await asyncio.sleep(0)

        other = asyncio.create_task(other_request())
        shaper = shaper_for(ENV, StreamOutcome(), text_completion=False, fast=True)
        async for _ in relay(engine(), shaper, interval_s=60):
            relayed += 1
        done.set()
        await other
        return seen

    seen = asyncio.run(run())
    assert any(10 < n < reads - 10 for n in seen), "no other task ran while the stream was relayed"


def test_a_stream_whose_reads_wait_costs_the_loop_no_extra_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads 6 ms apart (longer than a fair turn) each wait on the socket, which is the loop's turn: the stream adds
    none of its own (one per chunk was 40% of the gateway's CPU per request at one stream)."""
    extra_turns = 0
    sleep = asyncio.sleep

    async def counted(delay: float, result: Any = None) -> Any:
        nonlocal extra_turns
        extra_turns += delay == 0
        return await sleep(delay, result)

    async def engine() -> AsyncIterator[bytes]:
        for i in range(10):
            await sleep(0.006)
            chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": f"t{i}"}}]}
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def run() -> int:
        shaper = shaper_for(ENV, StreamOutcome(), text_completion=False, fast=True)
        return len([part async for part in relay(engine(), shaper, interval_s=60)])

    monkeypatch.setattr(asyncio, "sleep", counted)
    assert asyncio.run(run()) == 11  # ten events and [DONE]
    assert extra_turns == 0
