"""The response cache on its own (no engine): what it keeps, for how long, for whom, and what it never keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import orjson
import pytest
from fastapi.responses import Response, StreamingResponse

from server.errors import InvalidRequest
from server.generation import response_cache as module
from server.generation.response_cache import DEFAULT_TTL_S, CacheUse, CacheWish, Entry, ResponseCache, wish
from server.schemas.preset import Preset

ASKED = {"x-openrouter-cache": "true"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=fake.monotonic, time=lambda: 1_700_000_000.0))
    return fake


def request(**fields: object) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": "hi"}], **fields})


def answer(text: str = "Hello") -> Response:
    body = {"id": "gen-1", "model": "m", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    return Response(orjson.dumps(body), media_type="application/json", headers={"X-Generation-Id": "gen-1"})


def stream(*events: bytes) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    return StreamingResponse(body(), media_type="text/event-stream", headers={"X-Generation-Id": "gen-2"})


CHUNK = b'data: {"id":"gen-2","model":"m","choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
DONE = b"data: [DONE]\n\n"


def drain(response: StreamingResponse) -> None:
    async def run() -> None:
        async for _ in response.body_iterator:
            pass

    asyncio.run(run())


def use(cache: ResponseCache, body: bytes, key_id: str | None = "k1", **headers: str) -> CacheUse:
    asked = wish(ASKED | headers, None)
    assert asked is not None
    return cache.use(asked, key_id, body)


def test_a_request_that_did_not_ask_is_not_served_from_the_cache() -> None:
    assert wish({}, None) is None
    assert wish({"x-openrouter-cache": "false"}, None) is None


def test_a_preset_asks_for_the_cache_with_its_ttl_and_the_headers_win() -> None:
    on = Preset(cache_enabled=True, cache_ttl_seconds=60)
    assert wish({}, on) == CacheWish(60, clear=False)
    assert wish({"x-openrouter-cache-ttl": "5", "x-openrouter-cache-clear": "true"}, on) == CacheWish(5, clear=True)
    assert wish({"x-openrouter-cache": "false"}, on) is None
    assert wish({}, Preset(cache_enabled=True)) == CacheWish(DEFAULT_TTL_S, clear=False)
    assert wish({}, Preset(cache_ttl_seconds=60)) is None  # a TTL alone does not turn the cache on


def test_the_same_request_of_the_same_key_hits_and_anything_else_misses(clock: Clock) -> None:
    cache = ResponseCache(1 << 20)
    cache.store(use(cache, request()), answer())
    assert use(cache, request()).found is not None
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    other_image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAB"}}
    cache.store(use(cache, request(messages=[{"role": "user", "content": [image]}])), answer())
    for different in (
        request(temperature=0.5),  # a parameter
        request(stream=True),  # streamed or not
        request(messages=[{"role": "user", "content": [other_image]}]),  # another image
    ):
        assert use(cache, different).found is None
    assert use(cache, request(), key_id="k2").found is None  # another key
    assert use(cache, request(), key_id=None).found is None  # no key at all is not any key


def test_entries_expire_with_their_ttl_streams_too(clock: Clock) -> None:
    cache = ResponseCache(1 << 20)
    cache.store(use(cache, request(), **{"x-openrouter-cache-ttl": "10"}), answer())
    streamed = cache.store(use(cache, request(stream=True), **{"x-openrouter-cache-ttl": "20"}), stream(CHUNK, DONE))
    assert isinstance(streamed, StreamingResponse)
    drain(streamed)
    clock.now += 9
    assert use(cache, request()).found is not None and use(cache, request(stream=True)).found is not None
    clock.now += 2
    assert use(cache, request()).found is None
    found = use(cache, request(stream=True)).found
    assert found is not None and found.streamed
    clock.now += 10
    assert use(cache, request(stream=True)).found is None


def test_a_bad_ttl_is_a_400() -> None:
    for ttl in ("0", "86401", "soon"):
        with pytest.raises(InvalidRequest):
            use(ResponseCache(1 << 20), request(), **{"x-openrouter-cache-ttl": ttl})


def test_the_oldest_entries_go_first_and_the_bytes_stay_bounded(clock: Clock) -> None:
    cache = ResponseCache(100)

    def entry(size: int) -> Entry:
        return Entry("gen", b"x" * size, size, clock.now + 60, "m", "stop")

    cache.put("a", entry(40))
    cache.put("b", entry(40))
    cache.put("c", entry(40))  # 120 bytes: the oldest goes
    assert list(cache._entries) == ["b", "c"] and cache._bytes == 80
    cache.put("big", entry(101))  # larger than the whole cache: never stored, nothing else dropped for it
    assert list(cache._entries) == ["b", "c"]
    cache.put("b", entry(60))  # replaced, counted once: 100 bytes fit
    assert list(cache._entries) == ["c", "b"] and cache._bytes == 100
    cache.put("d", entry(1))  # one byte over: the oldest (c) goes
    assert list(cache._entries) == ["b", "d"] and cache._bytes == 61


@pytest.mark.parametrize(
    "events",
    [
        (CHUNK,),  # cut off before its end
        (CHUNK, b'data: {"error":{"code":502,"message":"Engine failed"}}\n\n', DONE),  # ended by an error chunk
    ],
    ids=["cut-off", "error-chunk"],
)
def test_a_stream_that_did_not_end_well_is_not_kept(clock: Clock, events: tuple[bytes, ...]) -> None:
    cache = ResponseCache(1 << 20)
    streamed = cache.store(use(cache, request(stream=True)), stream(*events))
    assert isinstance(streamed, StreamingResponse)
    drain(streamed)
    assert use(cache, request(stream=True)).found is None


def test_error_answers_are_not_kept(clock: Clock) -> None:
    cache = ResponseCache(1 << 20)
    for status in (400, 429, 500, 502):
        failed = Response(b'{"error":{"code":%d,"message":"no"}}' % status, status_code=status)
        assert cache.store(use(cache, request()), failed).headers["x-openrouter-cache-status"] == "MISS"
        assert use(cache, request()).found is None
