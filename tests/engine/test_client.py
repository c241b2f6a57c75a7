"""The engine client against a small HTTP server of the test's: each call is an `engine` span under the request's,
whose trace context reaches the engine with the request id; a failure marks the span with the error's kind only (an
engine's message may quote the prompt); a stream's span ends when the stream is closed, with its first token and how
it ended; with tracing off, no trace context is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from server.engine.lifecycle import EngineState
from server.errors import EngineError, GatewayError, InvalidRequest
from server.fleet.client import EngineClient, Sessions
from server.fleet.members import fleet_of
from server.fleet.routing import Router
from server.serving import free_port
from server.workers.engine_view import EngineView

SECRET = "the prompt's secret"


class Engine:
    """Answers by path: JSON, a body that is not JSON, a refusal quoting the prompt, or a two-event stream."""

    def __init__(self) -> None:
        self.headers: list[CIMultiDict[str]] = []

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(request.headers.copy())
        kind = request.match_info["kind"]
        if kind == "json":
            return web.json_response({"ok": True})
        if kind == "garbled":
            return web.Response(body=b"<html>busy</html>", content_type="text/html")
        if kind == "refused":
            return web.json_response({"error": {"message": f"cannot take '{SECRET}'"}}, status=400)
        stream = web.StreamResponse()
        await stream.prepare(request)
        await stream.write(b'data: {"choices": []}\n\n')
        await stream.write(b"data: [DONE]\n\n")
        return stream


@asynccontextmanager
async def engine_client(tracer: Tracer) -> AsyncIterator[tuple[EngineClient, Engine]]:
    engine = Engine()
    app = web.Application()
    app.router.add_post("/{kind}", engine.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    view = EngineView()
    view.url, view.state, view.api_key = f"http://127.0.0.1:{port}", EngineState.READY, "engine-key"
    fleet = fleet_of(view)
    sessions = Sessions(fleet, 30)
    try:
        yield EngineClient(sessions, fleet, Router(), 1, tracer), engine
    finally:
        await sessions.aclose()
        await runner.cleanup()


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exported: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider.get_tracer("test")


def test_an_engine_call_is_a_span_whose_context_and_request_id_reach_the_engine(
    tracer: Tracer, exported: InMemorySpanExporter
) -> None:
    async def call() -> tuple[Any, CIMultiDict[str]]:
        async with engine_client(tracer) as (client, engine):
            with tracer.start_as_current_span("request") as request:
                assert await client.post("/json", {}, "req-1.gen-1") == {"ok": True}
            return request.get_span_context(), engine.headers[-1]

    request, headers = asyncio.run(call())
    span = next(s for s in exported.get_finished_spans() if s.name == "engine")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == request.span_id
    assert span.status.status_code is StatusCode.UNSET
    assert headers["x-request-id"] == "req-1.gen-1"
    assert headers["authorization"] == "Bearer engine-key"
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")  # W3C trace context
    assert (version, trace_id, parent_id) == ("00", f"{request.trace_id:032x}", f"{span.context.span_id:016x}")


@pytest.mark.parametrize(("path", "error"), [("/garbled", EngineError), ("/refused", InvalidRequest)])
def test_a_failed_call_marks_its_span_with_the_errors_kind_only(
    tracer: Tracer, exported: InMemorySpanExporter, path: str, error: type[GatewayError]
) -> None:
    async def call() -> None:
        async with engine_client(tracer) as (client, _):
            with pytest.raises(error):
                await client.post(path, {})

    asyncio.run(call())
    (span,) = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == error.__name__  # not the engine's message, which may quote the prompt
    assert not span.events  # no exception event (its message) either


def test_a_streams_span_ends_when_the_stream_is_closed(tracer: Tracer, exported: InMemorySpanExporter) -> None:
    async def call() -> tuple[bytes, int]:
        async with engine_client(tracer) as (client, _):
            stream = await client.stream("/stream", {}, "req-2.gen-2")
            body = b"".join([chunk async for chunk in stream.reads()])
            ended_before_close = len(exported.get_finished_spans())
            stream.close(time.monotonic(), error=True)
            return body, ended_before_close

    body, ended_before_close = asyncio.run(call())
    assert body.endswith(b"data: [DONE]\n\n")
    assert ended_before_close == 0
    (span,) = exported.get_finished_spans()
    assert [e.name for e in span.events] == ["first_token", "stream_end"]
    assert span.status.status_code is StatusCode.ERROR


def test_without_tracing_no_trace_context_is_sent() -> None:
    async def call() -> CIMultiDict[str]:
        async with engine_client(trace.NoOpTracer()) as (client, engine):
            stream = await client.stream("/stream", {}, "req-3.gen-3")
            stream.close()
            await client.post("/json", {})
            return engine.headers[0]

    headers = asyncio.run(call())
    assert "traceparent" not in headers
    assert headers["x-request-id"] == "req-3.gen-3"
