"""Relay an engine's SSE stream to the client in OpenRouter's shape.

Before the first token the client gets `: OPENROUTER PROCESSING` comments, as from OpenRouter, never an empty
role-only chunk. The first comment waits for the first token and goes out in the same write, unless a keep-alive
interval passes first; then one goes every interval. A comment alone in a read makes `vllm bench serve` (0.32)
drop the whole response (its reader strips the blank line that ends the comment and never finds another message
boundary), so it is sent alone only when a client would otherwise wait in silence.

Usage arrives once, in a final chunk with `choices: []`, then
`data: [DONE]`. A failure after the stream started is one chunk with a top-level `error` and
`finish_reason: "error"`, and the stream ends. The caller owns the engine response and closes it when the stream
ends or the client goes away (server/pipeline.py), which makes vLLM abort the request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import orjson

from server.shaping.outbound import Envelope, chunk, error_chunk, finish_reason, usage

PROCESSING = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"


@dataclass
class StreamOutcome:
    """What the stream did, for the generation record."""

    first_token_at: float | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    cancelled: bool = False
    error: str | None = None


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ChunkShaper:
    """Engine chunk -> OpenRouter chunk (or None to drop it), remembering what the record needs."""

    def __init__(self, env: Envelope, outcome: StreamOutcome, text_completion: bool) -> None:
        self.env, self.outcome, self.text_completion = env, outcome, text_completion
        self.saw_tool_calls = False

    def shape(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        if "error" in raw:
            err = raw["error"] if isinstance(raw["error"], dict) else {"message": str(raw["error"])}
            raise EngineStreamError(str(err.get("message", "engine error")))
        choices = raw.get("choices") or []
        if not choices:
            if raw.get("usage") is None:
                return None
            self.outcome.usage = usage(raw["usage"], self.env.pricing)
            return chunk(self.env, [], usage=self.outcome.usage)
        shaped = [c for c in map(self._choice, choices) if c is not None]
        return chunk(self.env, shaped) if shaped else None

    def _choice(self, c: dict[str, Any]) -> dict[str, Any] | None:
        native = c.get("finish_reason")
        if self.text_completion:
            text = c.get("text") or ""
            has_output = bool(text)
            body: dict[str, Any] = {"text": text}
        else:
            delta = c.get("delta") or {}
            tool_calls = delta.get("tool_calls")
            self.saw_tool_calls |= bool(tool_calls)
            has_output = bool(delta.get("content")) or bool(tool_calls)
            body = {"delta": {"role": "assistant", "content": delta.get("content") or ""}}
            if tool_calls:
                body["delta"]["tool_calls"] = tool_calls
        if not has_output and native is None:
            return None  # vLLM's role-only opening chunk and empty deltas carry nothing for the client
        if self.outcome.first_token_at is None:
            self.outcome.first_token_at = time.monotonic()
        normalized = finish_reason(native, self.saw_tool_calls)
        if native is not None:
            self.outcome.finish_reason, self.outcome.native_finish_reason = normalized, native
        return {
            "index": c.get("index", 0),
            **body,
            "finish_reason": normalized,
            "native_finish_reason": native,
            "logprobs": c.get("logprobs"),
        }


class EngineStreamError(Exception):
    """The engine reported an error inside its stream."""


async def _lines_with_keepalive(
    response: httpx.Response, outcome: StreamOutcome, interval_s: float
) -> AsyncIterator[bytes | str]:
    """The engine's lines, with PROCESSING comments (bytes) interleaved until the first token.

    Until the first token a read runs as a task so comments can go out while it waits. That task is never awaited
    directly (awaiting it from a cancelled coroutine would cancel it, and a second cancel in cleanup would cut
    httpcore's own close short, leaving the engine connection open and the engine generating): it is watched with
    `asyncio.wait`, and on cleanup cancelled once and waited for. After the first token, lines are read directly.
    """
    lines = response.aiter_lines()
    pending: asyncio.Task[str] | None = None
    try:
        while outcome.first_token_at is None:
            pending = pending or asyncio.ensure_future(anext(lines))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield PROCESSING
                continue
            finished, pending = pending, None
            try:
                line = finished.result()
            except StopAsyncIteration:
                return
            yield line
        async for line in lines:
            yield line
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({pending})


async def relay(response: httpx.Response, shaper: ChunkShaper, interval_s: float) -> AsyncIterator[bytes]:
    outcome = shaper.outcome
    greeting = PROCESSING  # sent with the first event, or alone by the keep-alive
    try:
        async for line in _lines_with_keepalive(response, outcome, interval_s):
            if isinstance(line, bytes):
                greeting = b""
                yield line
                continue
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            shaped = shaper.shape(orjson.loads(data))
            if shaped is not None and greeting:
                yield greeting + event(shaped)
                greeting = b""
            elif shaped is not None:
                yield event(shaped)
            # When the engine's lines are already buffered, neither reading them nor sending to the client
            # suspends: without this, one stream that fell behind would hold the event loop until it ends.
            await asyncio.sleep(0)
        yield DONE
    except (asyncio.CancelledError, GeneratorExit):
        outcome.cancelled = True
        raise
    except (httpx.HTTPError, EngineStreamError, orjson.JSONDecodeError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.finish_reason = "error"
        yield event(error_chunk(shaper.env, 502, "Engine stopped during generation"))
