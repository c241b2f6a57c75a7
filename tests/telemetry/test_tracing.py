"""Traces and request ids without an engine: tracing is off unless a collector is named, the gateway's spans reach a
real OTLP receiver under the client's trace, the engine is told to export to the same collector, and the engine's
request lines are logged under the gateway's request id with their parameters cut."""

from __future__ import annotations

import asyncio
import logging
import secrets

import httpx
import pytest

from server.engine.output import EngineOutput
from server.settings import Settings
from server.telemetry.console import TextFormatter
from server.telemetry.request_log import RequestContextFilter
from server.telemetry.tracing import Tracing, engine_flags, traces_endpoint
from tests.support.otlp_receiver import otlp_receiver
from tests.support.served_app import gateway_settings, served_app


def test_tracing_is_off_and_the_engine_not_told_unless_a_collector_is_named() -> None:
    settings = Settings()
    assert settings.otlp_endpoint is None
    assert not Tracing.start(settings).enabled
    assert engine_flags(settings) == ([], {})


@pytest.mark.parametrize(
    ("given", "protocol", "used"),
    [
        ("http://collector:4318", "http/protobuf", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http/protobuf", "http://collector:4318/v1/traces"),
        ("http://collector:4318/custom/traces", "http/protobuf", "http://collector:4318/custom/traces"),
        ("http://collector:4317", "grpc", "http://collector:4317"),
    ],
)
def test_the_engine_exports_to_the_same_collector(given: str, protocol: str, used: str) -> None:
    settings = Settings(otlp_endpoint=given, otlp_protocol=protocol)
    assert traces_endpoint(settings) == used
    flags, env = engine_flags(settings)
    assert flags == ["--otlp-traces-endpoint", used]
    # vLLM's exporter defaults to gRPC: it is told the protocol, and names itself apart from the gateway.
    assert env == {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol, "OTEL_SERVICE_NAME": "mistral-local-engine"}


def test_opentelemetrys_own_variables_name_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-gateway")
    settings = Settings()
    assert traces_endpoint(settings) == "http://otel:4318/v1/traces"
    assert engine_flags(settings)[1]["OTEL_SERVICE_NAME"] == "chat-gateway-engine"
    monkeypatch.setenv("MISTRAL_LOCAL_OTLP_ENDPOINT", "http://mine:4318")
    assert Settings().otlp_endpoint == "http://mine:4318"


@pytest.mark.parametrize("flags", ["01", "00"], ids=["sampled", "not-sampled"])
def test_each_request_is_a_trace_of_the_gateways_own_linked_to_the_clients(flags: str) -> None:
    """The engine is down here: the request's span still ends, with its status and the error marked. A client's
    `traceparent` is a link, never the parent: a client cannot choose the trace id, nor switch tracing off with the
    sampled flag. The failed step says the error's type, never its message, and records no exception."""
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    with otlp_receiver() as receiver:
        settings = gateway_settings(otlp_endpoint=receiver.endpoint, insecure_no_auth=True)
        with served_app(settings) as url:
            headers = {"traceparent": f"00-{client_trace}-{client_span}-{flags}", "X-Request-Id": "no-engine-1"}
            body = {"messages": [{"role": "user", "content": "hello"}]}
            r = httpx.post(f"{url}/api/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert r.status_code == 503 and "Engine is" in r.json()["error"]["message"]
        # Leaving served_app ran the lifespan's end, which flushes the exporter.
        assert not receiver.trace(client_trace)
        spans = receiver.trace(receiver.linked_to(client_trace))
    request = next(s for s in spans if s.name == "POST /api/v1/chat/completions")
    assert request.parent_id == "" and request.links == [(client_trace, client_span)]
    assert request.service == "mistral-local"
    assert request.attributes["http.response.status_code"] == 503
    assert request.attributes["mistral_local.request_id"] == "no-engine-1"
    assert request.status_code == 2  # error
    admission = next(s for s in spans if s.name == "admission")
    assert (admission.status_code, admission.status_message) == (2, "EngineUnavailable")
    assert not [e for s in spans for e in s.events if e.name == "exception"]
    assert not [x for s in spans for x in s.strings() if "Engine is" in x]


async def _pump(lines: bytes) -> EngineOutput:
    output = EngineOutput()
    stream = asyncio.StreamReader()
    stream.feed_data(lines)
    stream.feed_eof()
    await output.pump(stream)
    return output


def test_engine_request_lines_carry_the_request_id_without_parameters(caplog: pytest.LogCaptureFixture) -> None:
    received = (
        b"(APIServer pid=7) INFO 11-30 10:00:00 [request_logger.py:64] Received request "
        b"chatcmpl-req-1a2b.c.gen-1764-AbCdEfGhIjKlMnOpQrSt: params: SamplingParams(n=1, stop=['SECRET-STOP']), "
        b"lora_request: None.\n"
    )
    other = b"(APIServer pid=7) INFO 11-30 10:00:00 [loggers.py:1] Engine 000: Avg prompt throughput: 1.0\n"
    foreign = b"INFO Received request cmpl-abc: params: SamplingParams(stop=['THEIRS'])\n"
    with caplog.at_level(logging.INFO, logger="mistral_local.engine"):
        output = asyncio.run(_pump(received + other + foreign))
    first, second, third = caplog.records
    assert first.getMessage().endswith(
        "Received request chatcmpl-req-1a2b.c.gen-1764-AbCdEfGhIjKlMnOpQrSt (parameters not logged)"
    )
    assert getattr(first, "request_id", None) == "req-1a2b.c"
    assert getattr(second, "request_id", None) is None
    # A request someone else sent the engine directly: no id of ours, parameters cut all the same.
    assert third.getMessage().endswith("Received request cmpl-abc (parameters not logged)")
    assert not [line for line in output.recent if "SECRET-STOP" in line or "THEIRS" in line]


def test_text_log_lines_start_with_the_request_id() -> None:
    record = logging.LogRecord("mistral_local.access", logging.INFO, __file__, 1, "POST %s", ("/x",), None)
    record.request_id = "req-42"
    RequestContextFilter().filter(record)  # an id the record carries is kept (an engine line's)
    assert TextFormatter().format(record) == "[req-42] POST /x"
    bare = logging.LogRecord("mistral_local", logging.INFO, __file__, 1, "started", (), None)
    RequestContextFilter().filter(bare)
    assert TextFormatter().format(bare) == "started"
