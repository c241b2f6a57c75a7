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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse

from server import sse
from server.errors import InvalidRequest
from server.schemas.preset import Preset

DEFAULT_TTL_S = 300
MAX_TTL_S = 86400


@dataclass
class Entry:
    source_id: str  # the generation that was stored
    body: bytes | list[sse.Parsed]  # the JSON answer, or the stream's events
    size: int  # the answer's bytes
    expires: float
    model: str
    finish_reason: str | None

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, list)


@dataclass(frozen=True)
class CacheWish:
    """What a request asked of the cache: how long to keep its answer, and whether to drop a stored one first."""

    ttl_s: int
    clear: bool


def wish(headers: Mapping[str, str], preset: Preset | None) -> CacheWish | None:
    """None unless the request asked for the cache: by its headers, or by naming a preset that turns it on (the
    headers win)."""
    by_preset = preset is not None and preset.cache_enabled
    if headers.get("x-openrouter-cache", "true" if by_preset else "").lower() != "true":
        return None
    ttl = headers.get("x-openrouter-cache-ttl")
    by_preset_ttl = preset.cache_ttl_seconds if preset is not None and by_preset else None
    clear = headers.get("x-openrouter-cache-clear", "").lower() == "true"
    return CacheWish(by_preset_ttl if ttl is None and by_preset_ttl else _ttl(ttl), clear)


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

    def use(self, asked: CacheWish, key_id: str | None, request: bytes) -> CacheUse:
        """`request`: the chat request as it will be served."""
        key = hashlib.sha256(f"{key_id}\0".encode() + request).hexdigest()
        if asked.clear:
            self._drop(key)
        found = self._entries.get(key)
        if found is not None and found.expires <= time.monotonic():
            self._drop(key)
            found = None
        return CacheUse(key, asked.ttl_s, found)

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
            return sse.map_stream(answer, _Keeper(lambda entry: self.put(use.key, entry), source, use.ttl_s))
        body = bytes(answer.body)
        answered = orjson.loads(body)
        finish = (answered.get("choices") or [{}])[0].get("finish_reason")
        expires = time.monotonic() + use.ttl_s
        self.put(use.key, Entry(source, body, len(body), expires, answered["model"], finish))
        return answer


class _Keeper(sse.EventMap):
    """Passes a stream's events on as they came and keeps them; stored when `[DONE]` ends it without an error
    chunk (a stream that broke off or was left never reaches `end`)."""

    def __init__(self, put: Callable[[Entry], None], source: str, ttl_s: int) -> None:
        self.put, self.source, self.ttl_s = put, source, ttl_s
        self.events: list[sse.Parsed] = []
        self.size = 0
        self.model, self.finish = "", None
        self.failed = False

    def feed(self, raw: bytes) -> bytes:
        self.size += len(raw) + 2
        self.parsed(sse.parse(raw))
        return sse.encode(raw)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        self.events.append(chunk)
        self.failed |= "error" in chunk
        self.model = self.model or chunk.get("model", "")
        for choice in chunk.get("choices") or []:
            self.finish = choice.get("finish_reason") or self.finish
        return b""

    def other(self, raw: bytes) -> bytes:
        self.events.append(raw)
        return b""

    def end(self) -> bytes:
        if not self.failed:
            self.events.append(None)
            self.put(Entry(self.source, self.events, self.size, time.monotonic() + self.ttl_s, self.model, self.finish))
        return b""


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


ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "cost": 0,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def _renamed(payload: dict[str, Any], gen_id: str, created: int) -> dict[str, Any]:
    renamed = payload | {"id": gen_id, "created": created}
    if payload.get("usage") is not None:
        renamed["usage"] = ZERO_USAGE
    return renamed


def replay(entry: Entry, gen_id: str) -> Response:
    """The stored answer under a new generation id and time, its usage 0."""
    created = int(time.time())
    headers = {
        "X-Generation-Id": gen_id,
        "X-OpenRouter-Cache-Status": "HIT",
        "X-OpenRouter-Cache-TTL": str(max(0, round(entry.expires - time.monotonic()))),
        "X-OpenRouter-Cache-Source-Id": entry.source_id,  # the generation whose answer this is (2026)
    }
    if isinstance(entry.body, bytes):
        body = orjson.dumps(_renamed(orjson.loads(entry.body), gen_id, created))
        return Response(body, media_type="application/json", headers=headers)
    events = [_renamed(e, gen_id, created) if isinstance(e, dict) else e for e in entry.body]
    return sse.ParsedStream(events, headers)
