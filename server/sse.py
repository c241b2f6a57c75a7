"""Server-sent events, the one codec of every stream the gateway reads or writes: the engine's and a hosted
upstream's (read), OpenRouter's chat stream and the other APIs' (written), the benchmark client's (read).

An event is its lines up to a blank line; `data:` lines carry a JSON payload (or `[DONE]`, the end of an OpenAI-style
stream), a line that starts with `:` is a comment (keep-alives; clients skip them). `Splitter` cuts reads into whole
events, keeping an event cut between reads for the next. `EventMap` is the one way to rewrite a finished chat stream
event by event (the response cache, the other APIs' dialects); a stream that is already parsed (a cache replay)
reaches it without being encoded and parsed again.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

import orjson
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE_PAYLOAD = b"[DONE]"
DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold a stream back

# A parsed event: a data event's JSON object, None for `[DONE]`, or raw bytes for an event kept as it came (a comment).
Parsed = dict[str, Any] | bytes | None


def data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named(kind: str, payload: dict[str, Any]) -> bytes:
    """An event with its type (`event:` line), as Anthropic's and the Responses API's streams send them."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


def payload_of(event: bytes) -> bytes:
    """An event's data: its `data:` lines joined by newlines, as the SSE spec joins them; b"" for a comment."""
    if event.startswith(b"data:") and b"\n" not in event:  # the usual event: one data line
        return event[5:].strip()
    return b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))


def parse(event: bytes) -> Parsed:
    """One event (without its blank line): its JSON payload, None for `[DONE]`, the event itself if it has no data."""
    payload = payload_of(event)
    if not payload:
        return event
    return None if payload == DONE_PAYLOAD else orjson.loads(payload)


def encode(parsed: Parsed) -> bytes:
    if parsed is None:
        return DONE
    return parsed + b"\n\n" if isinstance(parsed, bytes) else data(parsed)


class Splitter:
    """Reads -> whole events (without their blank line); the rest of an event cut between reads waits for the next."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, read: bytes) -> list[bytes]:
        *events, self.rest = (self.rest + read).split(b"\n\n")
        return events


class EventMap:
    """A rewrite of a chat stream, event by event: `chunk` for each data event, `end` for `[DONE]`, `other` for the
    rest (comments pass as they are). `feed` is what a raw event takes (override it to keep raw bytes)."""

    def feed(self, raw: bytes) -> bytes:
        return self.parsed(parse(raw))

    def parsed(self, parsed: Parsed) -> bytes:
        if parsed is None:
            return self.end()
        return self.other(parsed) if isinstance(parsed, bytes) else self.chunk(parsed)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return data(chunk)

    def end(self) -> bytes:
        return DONE

    def other(self, raw: bytes) -> bytes:
        return raw + b"\n\n"


class ParsedStream(StreamingResponse):
    """A stream whose events are at hand parsed (a replayed answer): encoded as it is sent, or rewritten by an
    `EventMap` without being encoded and parsed first."""

    def __init__(self, events: list[Parsed], headers: dict[str, str]) -> None:
        self.events = events
        super().__init__(self._encoded(), media_type=MEDIA_TYPE, headers=HEADERS | headers)

    async def _encoded(self) -> AsyncIterator[bytes]:
        yield b"".join(map(encode, self.events))


async def _mapped_reads(body: AsyncIterable[Any], through: EventMap) -> AsyncGenerator[bytes, None]:
    """Events that came in one read leave in one write."""
    events = Splitter()
    try:
        async for read in body:  # bytes: the gateway's streams yield nothing else
            if out := b"".join(through.feed(e) for e in events.feed(bytes(read))):
                yield out
    finally:
        if isinstance(body, AsyncGenerator):
            await body.aclose()  # the stream's own cleanup (a client that left is recorded as cancelled)


async def _mapped_parsed(events: Iterable[Parsed], through: EventMap) -> AsyncIterator[bytes]:
    yield b"".join(through.parsed(e) for e in events)


def map_stream(answer: StreamingResponse, through: EventMap) -> StreamingResponse:
    """The stream rewritten by `through`, with the same status and headers."""
    if isinstance(answer, ParsedStream):
        answer.body_iterator = _mapped_parsed(answer.events, through)
    else:
        answer.body_iterator = _mapped_reads(answer.body_iterator, through)
    return answer


class FinalizingStream(StreamingResponse):
    """An event stream that runs `finish` before the end of the body, so the generation is recorded when the client
    sees the stream end, and also when the body never started or broke off (the client left first). `finish` runs
    once."""

    def __init__(self, content: AsyncIterator[bytes], finish: Callable[[], None], headers: dict[str, str]) -> None:
        super().__init__(content, media_type=MEDIA_TYPE, headers=HEADERS | headers)
        self._finish: Callable[[], None] | None = finish

    def _finish_once(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for part in self.body_iterator:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        self._finish_once()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._finish_once()


def stream(content: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(content, media_type=MEDIA_TYPE, headers=HEADERS | (headers or {}))
