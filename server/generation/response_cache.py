"""OpenRouter's response cache (`X-OpenRouter-Cache: true`, `-TTL`, `-Clear`): an identical request from the same
key gets the stored answer again, at no cost, under a generation id of its own.

Off unless the operator enables it (settings.response_cache); then a request opts in with the header. Identical
means the same key, and the same chat request (model, every parameter, streaming or not); one key's entries are never
another's. Only a whole 200 answer is stored: an error, or a stream that broke off or was left, is not. A streamed
answer is replayed as the same chunks; each hit's chunks carry its own id and `created`, and usage counters of 0.
Entries live in this process's memory, bounded in bytes, the oldest dropped first (with gateway workers each keeps
its own: a hit on one worker may be a miss on another).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse

from server.errors import InvalidRequest

DEFAULT_TTL_S = 300
MAX_TTL_S = 86400
_DONE = b"data: [DONE]"


@dataclass
class Entry:
    source_id: str  # the generation that was stored
    streamed: bool
    body: bytes  # the JSON answer, or the SSE stream's bytes
    expires: float
    model: str
    finish_reason: str | None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.body)


@dataclass
class CacheUse:
    """One request's use of the cache: its entry's key and TTL, and what it found."""

    key: str
    ttl_s: int
    found: Entry | None


class ResponseCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0

    def use(self, headers: Mapping[str, str], key_id: str | None, request: Callable[[], bytes]) -> CacheUse | None:
        """None unless the request asked for the cache. `request`: the chat request as it will be served, encoded
        only for a request that asked (it holds the images: large)."""
        if headers.get("x-openrouter-cache", "").lower() != "true":
            return None
        ttl = _ttl(headers.get("x-openrouter-cache-ttl"))
        key = hashlib.sha256(f"{key_id}\0".encode() + request()).hexdigest()
        if headers.get("x-openrouter-cache-clear", "").lower() == "true":
            self._drop(key)
        found = self._entries.get(key)
        if found is not None and found.expires <= time.monotonic():
            self._drop(key)
            found = None
        return CacheUse(key, ttl, found)

    def put(self, key: str, entry: Entry) -> None:
        if entry.size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        if (gone := self._entries.pop(key, None)) is not None:
            self._bytes -= gone.size

    def store(self, use: CacheUse, answer: Response) -> Response:
        """The answer, stored once it is whole (a stream: as it passes, stored at its end)."""
        headers = {"X-OpenRouter-Cache-Status": "MISS", "X-OpenRouter-Cache-TTL": str(use.ttl_s)}
        answer.headers.update(headers)
        if answer.status_code != 200:
            return answer
        source = answer.headers.get("x-generation-id", "")
        if isinstance(answer, StreamingResponse):
            answer.body_iterator = self._kept(answer.body_iterator, use, source)
            return answer
        body = bytes(answer.body)
        answered = orjson.loads(body)
        finish = (answered.get("choices") or [{}])[0].get("finish_reason")
        self.put(use.key, Entry(source, False, body, time.monotonic() + use.ttl_s, answered["model"], finish))
        return answer

    async def _kept(self, body: AsyncIterable[Any], use: CacheUse, source: str) -> AsyncIterator[bytes]:
        parts: list[bytes] = []
        try:
            async for part in body:
                parts.append(bytes(part))
                yield part
        finally:
            if isinstance(body, AsyncGenerator):
                await body.aclose()  # the stream's own cleanup, whether it ended or the client left
        whole = b"".join(parts)
        if _DONE in whole and b'"error":' not in whole:  # it ended, and not with an error chunk
            model, finish = _model_and_finish(whole)
            self.put(use.key, Entry(source, True, whole, time.monotonic() + use.ttl_s, model, finish))


def _ttl(given: str | None) -> int:
    if given is None:
        return DEFAULT_TTL_S
    try:
        ttl = int(given)
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= MAX_TTL_S:
        raise InvalidRequest(f"X-OpenRouter-Cache-TTL: a whole number of seconds from 1 to {MAX_TTL_S}")
    return ttl


def _model_and_finish(stream: bytes) -> tuple[str, str | None]:
    model, finish = "", None
    for event in stream.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            model = model or chunk.get("model", "")
            for choice in chunk.get("choices") or []:
                finish = choice.get("finish_reason") or finish
    return model, finish


ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "cost": 0,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def _renamed(payload: dict[str, Any], gen_id: str, created: int) -> bytes:
    payload["id"], payload["created"] = gen_id, created
    if payload.get("usage") is not None:
        payload["usage"] = ZERO_USAGE
    return orjson.dumps(payload)


def replay(entry: Entry, gen_id: str) -> Response:
    """The stored answer under a new generation id and time, its usage 0."""
    created = int(time.time())
    headers = {
        "X-Generation-Id": gen_id,
        "X-OpenRouter-Cache-Status": "HIT",
        "X-OpenRouter-Cache-TTL": str(max(0, round(entry.expires - time.monotonic()))),
        "X-OpenRouter-Cache-Source-Id": entry.source_id,  # the generation whose answer this is (2026)
    }
    if not entry.streamed:
        body = _renamed(orjson.loads(entry.body), gen_id, created)
        return Response(body, media_type="application/json", headers=headers)
    events = []
    for event in entry.body.split(b"\n\n"):
        if event.startswith(b"data: {"):
            event = b"data: " + _renamed(orjson.loads(event[6:]), gen_id, created)
        events.append(event)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"\n\n".join(events)

    headers |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)
