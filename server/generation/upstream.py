"""The hosted upstream: an OpenRouter-compatible API the gateway forwards requests to when the front door allows
(server/generation/dispatch.py).

The client's body goes as it came (only `model` is set to the model being tried, and `models` removed: the gateway
walks that list itself), with its attribution headers (`HTTP-Referer`, `X-Title`) and the upstream's own key, never
the client's. Answers come back as the upstream sent them; only the final usage chunk of a stream is read, for the
generation record. Failures a fallback may cover (408, 429, 5xx, timeouts, no connection) raise `UpstreamFailed`
before anything reached the client; other errors pass through in OpenRouter's shape.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from fastapi.responses import Response, StreamingResponse

from server import sse
from server.access.auth import Principal
from server.generation.ids import new_generation_id
from server.schemas.request import ChatRequest
from server.settings import Settings

# The client headers OpenRouter reads for attribution; nothing else of the client's request goes upstream.
FORWARDED_HEADERS = ("http-referer", "referer", "x-title", "x-openrouter-title", "x-openrouter-categories")
FALLBACK_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class UpstreamFailed(Exception):
    """Nothing was sent to the client yet, so another model or provider may still answer."""

    status: int
    body: dict[str, Any]


@dataclass
class Answer:
    """What the generation record needs from an upstream answer."""

    id: str = ""
    model: str = ""
    provider: str = ""
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    first_token_at: float | None = None
    error: str | None = None


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message}}


def _shaped_error(status: int, raw: bytes) -> dict[str, Any]:
    """The upstream's error as it sent it when it is OpenRouter-shaped, else wrapped in that shape."""
    try:
        body = orjson.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body
    except orjson.JSONDecodeError:
        pass
    return error_body(status, f"Upstream error: {raw[:200].decode(errors='replace')}")


def _read_chunk(data: bytes, answer: Answer) -> None:
    chunk = orjson.loads(data)
    answer.id = answer.id or chunk.get("id", "")
    answer.model = chunk.get("model") or answer.model
    answer.provider = chunk.get("provider") or answer.provider
    if chunk.get("usage"):
        answer.usage = chunk["usage"]
    for choice in chunk.get("choices") or []:
        if answer.first_token_at is None and choice.get("delta"):
            answer.first_token_at = time.monotonic()
        answer.finish_reason = choice.get("finish_reason") or answer.finish_reason


def upstream_refusal(settings: Settings, req: ChatRequest, principal: Principal, model: str) -> str | None:
    """Why this request may not leave the machine for `model` (None: it may)."""
    prefs = req.provider
    reasons = [
        (settings.upstream_url is None, "no upstream is configured"),
        (settings.local_only, "the server is local-only"),
        (principal.local_only, "the key is local-only"),
        (bool(settings.upstream_keys) and principal.label not in settings.upstream_keys, "the key may not use it"),
        ("*" not in settings.upstream_models and model not in settings.upstream_models, "the model is not allowed"),
        (prefs is not None and prefs.allow_fallbacks is False, "provider.allow_fallbacks is false"),
        (prefs is not None and prefs.data_collection == "deny", "provider.data_collection is deny"),
        (prefs is not None and prefs.zdr is True, "provider.zdr is true"),
    ]
    return next((why for refused, why in reasons if refused), None)


class Upstream:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else ""
        self.auth = [(b"authorization", f"Bearer {key}".encode())] if key else []

    def _request(self, body: dict[str, Any], headers: Mapping[str, str]) -> httpx.Request:
        # As the client sent them, byte for byte: Starlette decoded them as latin-1, and a UTF-8 title is not ASCII.
        forwarded = [(k.encode(), v.encode("latin-1")) for k, v in headers.items() if k.lower() in FORWARDED_HEADERS]
        url = f"{self.settings.upstream_url.rstrip('/')}/chat/completions" if self.settings.upstream_url else ""
        return self.client.build_request(
            "POST",
            url,
            content=orjson.dumps(body),
            headers=[*forwarded, *self.auth, (b"content-type", b"application/json")],
        )

    async def _send(self, request: httpx.Request, stream: bool) -> httpx.Response:
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(408, error_body(408, "Upstream timed out. Please try again later.")) from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailed(502, error_body(502, f"Upstream unreachable: {type(exc).__name__}")) from exc
        if response.status_code == 200:
            return response
        raw = await response.aread()
        await response.aclose()
        shaped = _shaped_error(response.status_code, raw)
        if response.status_code in FALLBACK_STATUSES:
            raise UpstreamFailed(response.status_code, shaped)
        raise PassThrough(response.status_code, shaped)

    async def complete(self, body: dict[str, Any], headers: Mapping[str, str]) -> tuple[Response, Answer]:
        response = await self._send(self._request(body, headers), stream=False)
        raw = await response.aread()
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamFailed(502, error_body(502, "Upstream answered with invalid JSON")) from exc
        # An answer without an id is recorded under one of ours, never a guessable one, and the client is told it.
        gen_id = parsed.get("id") or new_generation_id()
        answer = Answer(gen_id, parsed.get("model", ""), parsed.get("provider", ""), parsed.get("usage"))
        answer.finish_reason = ((parsed.get("choices") or [{}])[0]).get("finish_reason")
        return Response(raw, media_type="application/json", headers={"X-Generation-Id": answer.id}), answer

    async def stream(
        self, body: dict[str, Any], headers: Mapping[str, str], done: Callable[[Answer], None]
    ) -> StreamingResponse:
        """The upstream's SSE, byte for byte. `done` gets the answer once the stream ended, broke or was left."""
        response = await self._send(self._request(body, headers), stream=True)
        answer = Answer()

        async def relay() -> AsyncIterator[bytes]:
            events = sse.Splitter()
            try:
                async for piece in response.aiter_bytes():
                    yield piece
                    for event in events.feed(piece):
                        # The record needs the first chunk (id, model, provider), the finish and the usage:
                        # the content chunks in between pass through unparsed.
                        pending = b'"finish_reason":null' in event or b'"finish_reason": null' in event
                        needed = not answer.id or not pending or b'"usage"' in event
                        if needed and (payload := sse.payload_of(event)).startswith(b"{"):
                            _read_chunk(payload, answer)
            except httpx.HTTPError as exc:
                # Tokens already went out: no retry (it would repeat them); end the stream as OpenRouter does.
                answer.error = type(exc).__name__
                chunk = {"id": answer.id, "model": answer.model, "provider": answer.provider, "choices": []}
                broken = {**chunk, **error_body(502, "Upstream stream broke during generation")}
                yield sse.data(broken) + sse.DONE
            finally:
                await response.aclose()
                done(answer)

        return sse.stream(relay())


@dataclass
class PassThrough(Exception):
    """An upstream error no fallback covers (400, 401, 402, 404, …): the client gets it as the upstream sent it."""

    status: int
    body: dict[str, Any]
