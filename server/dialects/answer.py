"""The chat path's answer, JSON or stream, rewritten into another API's shape with the same status and headers."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse


class EventTranslator:
    """The chat stream's events as another API's. Keep-alive comments pass as they are (SSE clients skip them)."""

    def feed(self, raw: bytes) -> bytes:
        """One SSE event of the chat stream (without its blank line), as the other API's events."""
        if raw.startswith(b":"):
            return raw + b"\n\n"
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return b""
        return self.end() if data == b"[DONE]" else self.chunk(orjson.loads(data))

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError


async def _events(body: AsyncIterable[Any], stream: EventTranslator) -> AsyncGenerator[bytes, None]:
    rest = b""
    try:
        async for data in body:  # bytes: the chat path's streams yield nothing else
            *events, rest = (rest + bytes(data)).split(b"\n\n")
            if out := b"".join(stream.feed(e) for e in events):
                yield out
    finally:
        if isinstance(body, AsyncGenerator):
            await body.aclose()  # the chat stream's own cleanup (a client that left is recorded as cancelled)


def translated(
    answer: Response, stream: EventTranslator, from_chat: Callable[[dict[str, Any]], dict[str, Any]]
) -> Response:
    if isinstance(answer, StreamingResponse):
        answer.body_iterator = _events(answer.body_iterator, stream)
        return answer
    if answer.status_code != 200:  # an error (from a hosted upstream): already in the error shape
        return answer
    body = orjson.dumps(from_chat(orjson.loads(answer.body)))
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(body, media_type="application/json", headers=headers)
