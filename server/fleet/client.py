"""The gateway's one way to reach its engines: one aiohttp session per engine whose pool is as large as the
engine's concurrency (httpx's pool costs far more per request and per chunk; see docs/performance.md). Each request
goes to the engine the fleet's router puts first (server/fleet/routing.py); an engine that refuses the connection is
taken out of rotation and the next one is tried (nothing was sent). Transport errors and engine error bodies are
translated into the gateway's error tree here and nowhere else.

Each call is an `engine` span of the current trace (OpenTelemetry's no-op one when tracing is off), sent to the
engine as its `traceparent`, so vLLM's own span joins the request's trace; a stream's span ends when it is closed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import orjson
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.engine.address import aiohttp_connector, http_base
from server.errors import (
    EngineError,
    EngineUnavailable,
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    availability,
    rewrite_context_error,
)
from server.fleet.members import Fleet, Member, state_of
from server.fleet.routing import Conversation, Router

TRACE_CONTEXT = TraceContextTextMapPropagator()  # W3C `traceparent`, to the engine

# What a stream read can raise once the engine has answered 200 (server/generation/stream.py makes it an error chunk).
STREAM_ERRORS = (aiohttp.ClientError, TimeoutError)


def engine_session(request_timeout_s: float, url: str) -> aiohttp.ClientSession:
    """For the engine at `url` (a Unix socket, or a TCP address): never through a proxy from the environment
    (prompts would travel there)."""
    timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=request_timeout_s)
    connector = aiohttp_connector(url)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False, auto_decompress=False)


class Sessions:
    """One aiohttp session per member. A member taken out of rotation gets a new one, and closing the old one cuts
    every request still on it: a hung engine holds no client (its streams end with an error chunk, the others get
    a 502 at once)."""

    def __init__(self, fleet: Fleet, request_timeout_s: float) -> None:
        self._timeout = request_timeout_s
        self._by_name = {m.name: engine_session(request_timeout_s, m.engine.url) for m in fleet.members}
        self._closing: set[asyncio.Task[None]] = set()
        for member in fleet.members:
            member.on_out.append(self.renew)

    def __getitem__(self, name: str) -> aiohttp.ClientSession:
        return self._by_name[name]

    def renew(self, member: Member) -> None:
        old, self._by_name[member.name] = self._by_name[member.name], engine_session(self._timeout, member.engine.url)
        task = asyncio.get_running_loop().create_task(old.close())
        self._closing.add(task)  # asyncio keeps only weak references to tasks
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        await asyncio.gather(*(s.close() for s in self._by_name.values()), *self._closing)


def _epoch_ns(monotonic_s: float) -> int:
    """A time.monotonic() mark as the wall-clock nanoseconds spans are stamped with."""
    return time.time_ns() - int((time.monotonic() - monotonic_s) * 1e9)


def _failed(span: Span, exc: BaseException) -> None:
    """The error's kind only: an engine's message may quote the request."""
    span.set_status(StatusCode.ERROR, type(exc).__name__)


class EngineStream:
    """An open 200 streaming response from the engine. `close` before the end drops the connection, which makes
    vLLM abort the request."""

    def __init__(self, response: aiohttp.ClientResponse, span: Span, done: Callable[[], None]) -> None:
        self._response = response
        self._span = span
        self._done = done  # the engine no longer counts this request

    def reads(self) -> AsyncIterator[bytes]:
        """The body as it arrives, one socket read at a time."""
        return self._response.content.iter_any()

    def close(self, first_token_at: float | None = None, error: bool = False) -> None:
        """`first_token_at` (time.monotonic) and `error` (the stream ended with an error) go on the call's span."""
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()
        self._done()
        if first_token_at is not None:
            self._span.add_event("first_token", timestamp=_epoch_ns(first_token_at))
        self._span.add_event("stream_end")
        if error:
            self._span.set_status(StatusCode.ERROR, "the stream ended with an error")
        self._span.end()


class Refused(EngineUnavailable):
    """An engine refused the connection: nothing was sent, another engine may take the request (one that escapes
    is still the 503 it always was)."""


class EngineClient:
    def __init__(
        self,
        sessions: Sessions,
        fleet: Fleet,
        router: Router,
        retry_after_s: int,
        tracer: Tracer,
    ) -> None:
        self.sessions = sessions
        self.fleet = fleet
        self.router = router
        self.retry_after_s = retry_after_s
        self.tracer = tracer

    def _unavailable(self, members: list[Member]) -> EngineUnavailable:
        retry = self.retry_after_s
        if len(members) == len(self.fleet.members):
            what = f"Engine is {self.fleet.state.value}"
        else:  # the engines of one model of several
            what = f"The engines serving this model are {state_of(members).value}" if members else "No engine"
        return EngineUnavailable(what, retry_after=retry, availability=availability("temporarily_unavailable", retry))

    def _body(self, payload: dict[str, Any]) -> bytes:
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
            raise Refused("Engine is restarting", retry_after=self.retry_after_s) from exc
        except aiohttp.ClientError as exc:  # the engine took the request and then failed it
            raise EngineError(f"Engine failed during the request ({type(exc).__name__})") from exc

    async def _send(
        self, path: str, payload: dict[str, Any], talk: Conversation | None, headers: dict[str, str], span: Span
    ) -> tuple[Member, aiohttp.ClientResponse]:
        """The answer of the first engine in the conversation's order that takes the connection; counted on it
        until the caller calls `member.in_flight -= 1` (post and stream do)."""
        members = self.fleet.members_for(payload.get("model", ""))  # those serving the request's model
        if not self.fleet.ready or not members:
            raise self._unavailable(members)
        body = self._body(payload)
        # A fleet of one has nothing to choose (unless it is a router that wants the session): no hashing.
        chooses = len(members) > 1 or members[0].router
        route = talk.route() if talk is not None and chooses else None
        for member in self.router.order(route, members):
            engine = member.engine
            sent = headers | ({"authorization": f"Bearer {engine.api_key}"} if engine.api_key else {})
            if member.router and route is not None:  # a router in front of several engines: its affinity agrees
                sent["x-session-id"] = route
            member.in_flight += 1
            taken = False  # a 200 answer: the caller holds the count until the answer is read
            try:
                with self._translated():
                    response = await self.sessions[member.name].post(
                        f"{http_base(engine.url)}{path}", data=body, headers=sent
                    )
                span.set_attribute("mistral_local.engine", member.name)
                if response.status == 200:
                    taken = True
                    return member, response
                async with response:
                    error_body = await self._read(response)
                raise engine_error(response.status, error_body)
            except Refused:
                if len(self.fleet.members) > 1:  # a fleet of one just answers 503, as it always did
                    member.eject("refused a connection")
                continue
            finally:
                if not taken:
                    member.in_flight -= 1
        raise self._unavailable(members)

    def _headers(self, request_id: str | None, span: Span) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        TRACE_CONTEXT.inject(headers, context=trace.set_span_in_context(span))
        return headers

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        with self._translated():
            return await response.read()

    async def post(
        self, path: str, payload: dict[str, Any], request_id: str | None = None, talk: Conversation | None = None
    ) -> dict[str, Any]:
        """`request_id`: the id the engine logs the request under; `talk`: the conversation it belongs to, None
        for a request with none (tokenizing: the least busy engine)."""
        with self.tracer.start_as_current_span(
            "engine", kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                member, response = await self._send(path, payload, talk, self._headers(request_id, span), span)
                try:
                    async with response:
                        return _json(await self._read(response))
                finally:
                    member.in_flight -= 1
            except BaseException as exc:
                _failed(span, exc)
                raise

    async def stream(
        self, path: str, payload: dict[str, Any], request_id: str | None = None, talk: Conversation | None = None
    ) -> EngineStream:
        """An open 200 streaming response; errors the engine reports before streaming are raised here. Its span
        outlives this call: the stream's `close` ends it."""
        span = self.tracer.start_span("engine", kind=SpanKind.CLIENT)
        try:
            member, response = await self._send(path, payload, talk, self._headers(request_id, span), span)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise

        def done() -> None:
            member.in_flight -= 1

        return EngineStream(response, span, done)

    async def count_tokens(self, payload: dict[str, Any]) -> int:
        """Prompt tokens for a chat payload, counted by the engine's own tokenizer (images and tools included)."""
        keys = ("model", "messages", "tools", "add_generation_prompt", "continue_final_message")
        data = await self.post("/tokenize", {k: payload[k] for k in keys if k in payload})
        return int(data["count"])


def _json(content: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise EngineError("Engine returned invalid JSON") from exc
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
        return EngineError("Engine rejected the gateway's key")
    if status == 404:
        return InvalidRequest(message or "Not found")
    if status == 413:
        return PayloadTooLarge(message or "Payload too large")
    return EngineError(f"Engine error ({status}): {message}" if message else f"Engine error ({status})")
