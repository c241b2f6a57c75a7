"""Relay an engine's SSE stream to the client in OpenRouter's shape.

Before the first token the client gets `: OPENROUTER PROCESSING` comments, as from OpenRouter, never an empty
role-only chunk. The first comment waits for the first token and goes out in the same write, unless a keep-alive
interval passes first; then one goes every interval. A comment alone in a read makes `vllm bench serve` (0.32)
drop the whole response (its reader strips the blank line that ends the comment and never finds another message
boundary), so it is sent alone only when a client would otherwise wait in silence.

Usage arrives once, in a final chunk with `choices: []`, then `data: [DONE]`. A failure after the stream started is
one chunk with a top-level `error` and `finish_reason: "error"`, and the stream ends. The caller owns the engine
stream and closes it when the stream ends or the client goes away (server/generation/pipeline.py), which makes vLLM
abort the request.

The fast path: most chunks are one choice's plain text delta, which `FastChunks` rewrites at the byte level into
exactly the bytes the parse-and-re-encode path (`ChunkShaper`) gives; every other chunk (tool calls, finish reasons,
logprobs, usage, errors) takes that path. Events that arrived in one read leave in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from server import sse
from server.errors import EngineError, availability
from server.fleet.client import STREAM_ERRORS
from server.generation.outbound import (
    Envelope,
    chunk,
    error_chunk,
    finish_reason,
    reasoning_details,
    reasoning_text,
    usage,
)
from server.generation.streamed_calls import StreamedCalls
from server.tasks import cancel_and_wait

PROCESSING = sse.comment("OPENROUTER PROCESSING")
FAIR_TURN_S = 0.005  # the longest a stream holds the event loop while its engine has data waiting


@dataclass
class StreamOutcome:
    """What the stream did, for the generation record."""

    first_token_at: float | None = None
    output_chunks: int = 0  # chunks that carried output: a stream left before its usage chunk is charged these
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    cancelled: bool = False
    error: str | None = None


class EngineStreamError(Exception):
    """The engine reported an error inside its stream."""


class ChunkShaper:
    """Engine chunk -> OpenRouter chunk (or None to drop it), remembering what the record needs."""

    def __init__(
        self, env: Envelope, outcome: StreamOutcome, text_completion: bool, forced: frozenset[str] = frozenset()
    ) -> None:
        self.env, self.outcome, self.text_completion = env, outcome, text_completion
        self.calls = StreamedCalls(forced)
        self.saw_tool_calls = False

    def render(self, data: bytes) -> bytes:
        """One engine event's payload as the client's SSE event (b"" when it carries nothing for the client)."""
        shaped = self.shape(orjson.loads(data))
        return sse.data(shaped) if shaped is not None else b""

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
            tool_calls = self.calls.shaped(c.get("index", 0), delta.get("tool_calls") or [])
            reasoning = reasoning_text(delta)
            self.saw_tool_calls |= bool(tool_calls)
            has_output = bool(delta.get("content")) or bool(tool_calls) or reasoning is not None
            body = {"delta": {"role": "assistant", "content": delta.get("content") or ""}}
            if reasoning is not None:
                body["delta"] |= {"reasoning": reasoning, "reasoning_details": reasoning_details(reasoning)}
            if tool_calls:
                body["delta"]["tool_calls"] = tool_calls
        if not has_output and native is None:
            return None  # vLLM's role-only opening chunk and empty deltas carry nothing for the client
        self.token_seen()
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

    def token_seen(self) -> None:
        self.outcome.output_chunks += 1
        if self.outcome.first_token_at is None:
            self.outcome.first_token_at = time.monotonic()


# vLLM 0.32's chunk for one choice's text delta and nothing else (pydantic, exclude_unset), as on the wire. The
# content's JSON string is taken as it is: the unrolled loop accepts any escape, which is re-encoded below.
PLAIN_DELTA = re.compile(
    rb'\{"id":"[^"\\]*","object":"chat\.completion\.chunk","created":\d+,"model":"[^"\\]*",'
    rb'"choices":\[\{"index":(\d+),"delta":\{"content":"([^"\\]*(?:\\.[^"\\]*)*)"\},'
    rb'"logprobs":null,"finish_reason":null(?:,"token_ids":null)?\}\]\}'
)


class FastChunks(ChunkShaper):
    """`ChunkShaper` with a byte-level rewrite of plain text deltas: the envelope is rendered once per stream."""

    def __init__(
        self, env: Envelope, outcome: StreamOutcome, text_completion: bool, forced: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(env, outcome, text_completion, forced)
        head, _, tail = sse.data(chunk(env, [])).rpartition(b'"choices":[]')
        self._head = head + b'"choices":[{"index":'
        self._tail = b'"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]' + tail

    def render(self, data: bytes) -> bytes:
        match = PLAIN_DELTA.fullmatch(data)
        if match is None:
            return super().render(data)
        index, content = match.groups()
        if not content:
            return b""  # an empty delta carries nothing, as in `_choice`
        if b"\\" in content:  # the escapes the parse-and-re-encode path would write
            content = orjson.dumps(orjson.loads(b'"' + content + b'"'))[1:-1]
        self.token_seen()
        return b"".join((self._head, index, b',"delta":{"role":"assistant","content":"', content, self._tail))


def shaper_for(
    env: Envelope, outcome: StreamOutcome, *, text_completion: bool, fast: bool, forced: frozenset[str] = frozenset()
) -> ChunkShaper:
    """Legacy completions' chunks never have the chat shape the byte path matches: they are always parsed."""
    return (FastChunks if fast and not text_completion else ChunkShaper)(env, outcome, text_completion, forced)


async def _until_first_token(
    reads: AsyncIterator[bytes], outcome: StreamOutcome, interval_s: float
) -> AsyncIterator[bytes]:
    """The engine's reads until the first token, with PROCESSING itself (that object) each interval that passes.

    A read runs as a task so comments can go out while it waits. That task is never awaited directly (awaiting it
    from a cancelled coroutine would cancel it, and a second cancel in cleanup would cut the transport's own close
    short, leaving the engine connection open and the engine generating): it is watched with `asyncio.wait`, and on
    cleanup cancelled once and waited for.
    """
    pending: asyncio.Task[bytes] | None = None
    try:
        while outcome.first_token_at is None:
            pending = pending or asyncio.ensure_future(anext(reads))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield PROCESSING
                continue
            finished, pending = pending, None
            try:
                data = finished.result()
            except StopAsyncIteration:
                return
            yield data
    finally:
        if pending is not None and not pending.done():
            with contextlib.suppress(Exception):  # the stream has ended: a failed read no longer matters
                await cancel_and_wait(pending)


STREAM_FAILURES = (*STREAM_ERRORS, EngineStreamError, orjson.JSONDecodeError)


class Events:
    """Engine reads -> the client's bytes: complete SSE events (vLLM writes one `data:` line each) rendered in one
    piece, an event cut between reads kept for the next."""

    def __init__(self, shaper: ChunkShaper) -> None:
        self.shaper = shaper
        self.events = sse.Splitter()
        self.ended = False  # the engine's [DONE] came
        self.failed_after = b""  # what the events before a failure gave

    def feed(self, data: bytes) -> bytes:
        """The rendered events; on a failure, raises it once `failed_after` holds what the events before gave."""
        parts: list[bytes] = []
        try:
            for payload in map(sse.payload_of, self.events.feed(data)):
                if payload == sse.DONE_PAYLOAD:
                    self.ended = True
                    break
                if payload:
                    parts.append(self.shaper.render(payload))
        except STREAM_FAILURES:
            self.failed_after = b"".join(parts)
            raise
        return b"".join(parts)


class FairTurns:
    """Whether a stream has held the event loop for FAIR_TURN_S: a callback queued when a stretch starts runs at the
    loop's next turn, so a read that waited on the socket (the usual case) ends the stretch at no cost beyond that."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.turned = True
        self.since = 0.0

    def _turned(self) -> None:
        self.turned = True

    def held(self) -> bool:
        """After a read: whether the stream should give the loop a turn now (a plain call: no coroutine per chunk)."""
        if self.turned:
            self.turned, self.since = False, self.loop.time()
            self.loop.call_soon(self._turned)
            return False
        return self.loop.time() - self.since > FAIR_TURN_S


async def relay(reads: AsyncIterator[bytes], shaper: ChunkShaper, interval_s: float) -> AsyncIterator[bytes]:
    """The client's stream. Reads come straight from the engine connection (aiohttp's `iter_any`), each taking all
    that is buffered. A read that finds data waiting returns without giving the event loop a turn, and so does a
    write the socket takes at once: when the engine writes faster than this process relays (a busy machine), one
    stream would hold the loop until it ended, and no other request would be served. So a stream that has held the
    loop for FAIR_TURN_S gives it a turn."""
    outcome = shaper.outcome
    events = Events(shaper)
    greeting = PROCESSING  # sent with the first event, or alone by the keep-alive
    try:
        async for data in _until_first_token(reads, outcome, interval_s):
            if data is PROCESSING:
                greeting = b""
                yield data
            elif out := events.feed(data):
                yield greeting + out
                greeting = b""
            if events.ended:
                break
        if not events.ended:
            turns = FairTurns()
            async for data in reads:
                if out := events.feed(data):
                    yield out
                if events.ended:
                    break
                if turns.held():
                    await asyncio.sleep(0)
        yield sse.DONE
    except (asyncio.CancelledError, GeneratorExit):
        outcome.cancelled = True
        raise
    except STREAM_FAILURES as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.finish_reason = "error"
        gone = availability("temporarily_unavailable")
        failed = error_chunk(shaper.env, 502, "Engine stopped during generation", EngineError.error_type, gone)
        yield events.failed_after + sse.data(failed)
