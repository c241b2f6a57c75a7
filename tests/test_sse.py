"""The one SSE codec (server/sse.py): events cut anywhere between reads come out whole, a rewrite sees each event once
and writes what one read brought in one piece, a replayed stream is rewritten without being encoded and parsed
again, and a finalizing stream records its end once, whether it ended or broke."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from fastapi.responses import StreamingResponse

from server import sse

CHUNKS: list[dict[str, Any]] = [
    {"id": "gen-1", "choices": [{"delta": {"content": "a\n\nb"}}]},
    {"id": "gen-1", "choices": []},
]
WIRE = b": OPENROUTER PROCESSING\n\n" + b"".join(sse.data(c) for c in CHUNKS) + sse.DONE


def test_events_cut_anywhere_between_reads_come_out_whole() -> None:
    for cut in range(1, len(WIRE)):
        splitter = sse.Splitter()
        events = splitter.feed(WIRE[:cut]) + splitter.feed(WIRE[cut:])
        assert [sse.parse(e) for e in events] == [b": OPENROUTER PROCESSING", *CHUNKS, None]
        assert splitter.rest == b""


def test_an_events_data_lines_are_joined_and_a_comment_has_none() -> None:
    assert sse.payload_of(b'event: x\ndata: {"a":\ndata: 1}') == b'{"a":\n1}'
    assert sse.payload_of(b"data:[DONE]") == sse.DONE_PAYLOAD
    assert sse.payload_of(b": keep-alive") == b""
    assert sse.named("message_stop", {"type": "message_stop"}) == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    for parsed in [*CHUNKS, None, b": a comment"]:
        assert sse.parse(sse.encode(parsed).removesuffix(b"\n\n")) == parsed


class Upper(sse.EventMap):
    """Each chunk's id upper-cased; counts the events it was given."""

    def __init__(self) -> None:
        self.seen = 0

    def parsed(self, parsed: sse.Parsed) -> bytes:
        self.seen += 1
        return super().parsed(parsed)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return sse.data(chunk | {"id": chunk["id"].upper()})


def drained(answer: StreamingResponse) -> list[bytes]:
    async def run() -> list[bytes]:
        return [part if isinstance(part, bytes) else str(part).encode() async for part in answer.body_iterator]

    return asyncio.run(run())


def test_a_rewritten_stream_keeps_comments_and_writes_each_read_in_one_piece() -> None:
    async def reads() -> AsyncIterator[bytes]:
        yield WIRE[:10]  # no whole event yet: nothing is written for it
        yield WIRE[10:]

    upper = Upper()
    parts = drained(sse.map_stream(sse.stream(reads()), upper))
    assert len(parts) == 1 and upper.seen == 4
    assert [sse.parse(e) for e in sse.Splitter().feed(parts[0])] == [
        b": OPENROUTER PROCESSING",
        *[c | {"id": "GEN-1"} for c in CHUNKS],
        None,
    ]


def test_a_replayed_stream_is_rewritten_from_its_parsed_events(monkeypatch: pytest.MonkeyPatch) -> None:
    replay = sse.ParsedStream([b": OPENROUTER PROCESSING", *CHUNKS, None], {"X-Generation-Id": "gen-2"})
    assert replay.headers["cache-control"] == "no-cache" and replay.media_type == sse.MEDIA_TYPE

    def never(_: bytes) -> None:
        raise AssertionError("a parsed stream was parsed again")

    monkeypatch.setattr(orjson, "loads", never)
    monkeypatch.setattr(sse, "parse", never)
    (whole,) = drained(sse.map_stream(replay, Upper()))
    assert whole.count(b'"id":"GEN-1"') == 2 and whole.endswith(sse.DONE)


def test_a_finalizing_stream_finishes_once_before_its_end_is_sent_and_when_it_broke() -> None:
    """The generation is recorded before the client sees the stream end (it may ask for the record at once), and
    also when the body broke off; once (twice would release the admission ticket and record twice)."""

    async def ends() -> AsyncIterator[bytes]:
        yield WIRE

    async def breaks() -> AsyncIterator[bytes]:
        yield WIRE[:20]
        raise RuntimeError("the engine went away")

    ended = asyncio.run(finalized(ends()))
    assert ended[ended.index("finish") + 1] is False  # finish comes before the end is sent
    assert ended.count("finish") == 1
    broke: list[object] = []
    with pytest.raises(RuntimeError, match="went away"):
        asyncio.run(finalized(breaks(), broke))
    assert broke.count("finish") == 1


async def finalized(body: AsyncIterator[bytes], order: list[object] | None = None) -> list[object]:
    """What happened, in order: "finish", or each body message's `more_body`."""
    seen: list[object] = [] if order is None else order
    answer = sse.FinalizingStream(body, lambda: seen.append("finish"), {"X-Generation-Id": "gen-3"})

    async def send(message: Any) -> None:
        seen.append(message.get("more_body"))

    async def receive() -> Any:
        await asyncio.sleep(3600)

    try:
        await answer({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    finally:
        assert "finish" in seen
    return seen
