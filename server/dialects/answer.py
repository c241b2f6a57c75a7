"""The chat path's answer, JSON or stream, rewritten into another API's shape with the same status and headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse

from server import sse


class EventTranslator(sse.EventMap):
    """The chat stream's events as another API's: each dialect says what a chunk and the end become. Keep-alive
    comments pass as they are (SSE clients skip them)."""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError


def translated(
    answer: Response, stream: EventTranslator, from_chat: Callable[[dict[str, Any]], dict[str, Any]]
) -> Response:
    if isinstance(answer, StreamingResponse):
        return sse.map_stream(answer, stream)
    if answer.status_code != 200:  # an error (from a hosted upstream): already in the error shape
        return answer
    body = orjson.dumps(from_chat(orjson.loads(answer.body)))
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(body, media_type="application/json", headers=headers)
