"""The gateway's one way to reach the engine over loopback: one shared aiohttp session whose pool is as large as
the engine's concurrency (httpx's pool costs far more per request and per chunk; see docs/performance.md).
Transport errors and engine error bodies are translated into the gateway's error tree here and nowhere else.

Each call is an `engine` span of the current trace (OpenTelemetry's no-op one when tracing is off), sent to the
engine as its `traceparent`, so vLLM's own span joins the request's trace; a stream's span ends when it is closed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.engine.address import aiohttp_connector, http_base
from server.engine.protocol import Engine
from server.errors import (
    EngineUnavailable,
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UpstreamError,
    rewrite_context_error,
)

TRACE_CONTEXT = TraceContextTextMapPropagator()  # W3C `traceparent`, to the engine

# What a stream read can raise once the engine has answered 200 (server/generation/stream.py makes it an error chunk).
STREAM_ERRORS = (aiohttp.ClientError, TimeoutError)


def engine_session(request_timeout_s: float, url: str) -> aiohttp.ClientSession:
    """For the engine at `url` (a Unix socket, or a TCP address): never through a proxy from the environment
    (prompts would travel there)."""
    timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=request_timeout_s)
    connector = aiohttp_connector(url)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False, auto_decompress=False)


def _epoch_ns(monotonic_s: float) -> int:
    """A time.monotonic() mark as the wall-clock nanoseconds spans are stamped with."""
    return time.time_ns() - int((time.monotonic() - monotonic_s) * 1e9)


def _failed(span: Span, exc: BaseException) -> None:
    """The error's kind only: an engine's message may quote the request."""
    span.set_status(StatusCode.ERROR, type(exc).__name__)


class EngineStream:
    """An open 200 streaming response from the engine. `close` before the end drops the connection, which makes
    vLLM abort the request."""

    def __init__(self, response: aiohttp.ClientResponse, span: Span) -> None:
        self._response = response
        self._span = span

    def reads(self) -> AsyncIterator[bytes]:
        """The body as it arrives, one socket read at a time."""
        return self._response.content.iter_any()

    def close(self, first_token_at: float | None = None, error: bool = False) -> None:
        """`first_token_at` (time.monotonic) and `error` (the stream ended with an error) go on the call's span."""
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()
        if first_token_at is not None:
            self._span.add_event("first_token", timestamp=_epoch_ns(first_token_at))
        self._span.add_event("stream_end")
        if error:
            self._span.set_status(StatusCode.ERROR, "the stream ended with an error")
        self._span.end()


class EngineClient:
    def __init__(self, http: aiohttp.ClientSession, engine: Engine, retry_after_s: int, tracer: Tracer) -> None:
        self.http = http
        self.engine = engine
        self.retry_after_s = retry_after_s
        self.tracer = tracer

    def _body(self, payload: dict[str, Any]) -> bytes:
        if not self.engine.ready:
            raise EngineUnavailable(f"Engine is {self.engine.state.value}", retry_after=self.retry_after_s)
        try:
            return orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits inside a tool's JSON schema
            raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """aiohttp's failures as the gateway's errors, for sending a request and for reading its answer."""
        try:
            yield
        except TimeoutError as exc:
            raise RequestTimeout("Operation timed out. Please try again later.") from exc
        except aiohttp.ClientConnectorError as exc:  # nothing listens: the engine is down or restarting
            raise EngineUnavailable("Engine is restarting", retry_after=self.retry_after_s) from exc
        except aiohttp.ClientError as exc:  # the engine took the request and then failed it
            raise UpstreamError(f"Engine failed during the request ({type(exc).__name__})") from exc

    async def _send(
        self, path: str, payload: dict[str, Any], request_id: str | None, span: Span
    ) -> aiohttp.ClientResponse:
        body = self._body(payload)
        headers = {"content-type": "application/json"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        TRACE_CONTEXT.inject(headers, context=trace.set_span_in_context(span))
        if self.engine.api_key:  # an attached engine may have none
            headers["authorization"] = f"Bearer {self.engine.api_key}"
        with self._translated():
            response = await self.http.post(f"{http_base(self.engine.url)}{path}", data=body, headers=headers)
        if response.status != 200:
            async with response:
                error_body = await self._read(response)
            raise engine_error(response.status, error_body)
        return response

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        with self._translated():
            return await response.read()

    async def post(self, path: str, payload: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        """`request_id`: the id the engine logs the request under."""
        with self.tracer.start_as_current_span(
            "engine", kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                async with await self._send(path, payload, request_id, span) as response:
                    return _json(await self._read(response))
            except BaseException as exc:
                _failed(span, exc)
                raise

    async def stream(self, path: str, payload: dict[str, Any], request_id: str | None = None) -> EngineStream:
        """An open 200 streaming response; errors the engine reports before streaming are raised here. Its span
        outlives this call: the stream's `close` ends it."""
        span = self.tracer.start_span("engine", kind=SpanKind.CLIENT)
        try:
            return EngineStream(await self._send(path, payload, request_id, span), span)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise

    async def count_tokens(self, payload: dict[str, Any]) -> int:
        """Prompt tokens for a chat payload, counted by the engine's own tokenizer (images and tools included)."""
        keys = ("model", "messages", "tools", "add_generation_prompt", "continue_final_message")
        data = await self.post("/tokenize", {k: payload[k] for k in keys if k in payload})
        return int(data["count"])


def _json(content: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("Engine returned invalid JSON") from exc
    return data


def engine_message(body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return body.decode(errors="replace")[:500]
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error)


def engine_error(status: int, body: bytes) -> GatewayError:
    """An engine error status as the gateway's error: the engine's message is kept where it helps the user."""
    message = engine_message(body)
    if status in (400, 422):
        return rewrite_context_error(message) or InvalidRequest(message or "Invalid request")
    if status == 401:
        return UpstreamError("Engine rejected the gateway's key")
    if status == 404:
        return InvalidRequest(message or "Not found")
    if status == 413:
        return PayloadTooLarge(message or "Payload too large")
    return UpstreamError(f"Engine error ({status}): {message}" if message else f"Engine error ({status})")
