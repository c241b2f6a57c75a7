"""Traces and logs that tie together, against the real engine: a gateway with two workers and tracing on exports to
a real OTLP receiver (tests/otlp_receiver.py), and so does the engine it launched. A streamed request gives one
trace, under the client's `traceparent`, whose spans come from the gateway and the engine in order, with no prompt
or completion text in them; its request id is in the response, the gateway's log lines and the engine's."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.gateway_process import Gateway, start_gateway
from tests.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.engine

PROMPT_MARKER = "zebra-quokka-7431"
STOP_MARKER = "STOPWORD-5580"
CHAT_ROUTE = "POST /api/v1/chat/completions"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(receiver: Receiver) -> Iterator[Gateway]:
    env = {
        "MISTRAL_LOCAL_OTLP_ENDPOINT": receiver.endpoint,  # a bare collector address: /v1/traces is added
        "MISTRAL_LOCAL_WORKERS": "2",
        "MISTRAL_LOCAL_LOG_FORMAT": "json",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export each batch after 0.1 s, not 5 s (gateway and engine alike)
    }
    gw = start_gateway("gateway-traced", "--profile", "cpu-tiny", env=env)
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


@dataclass
class Traced:
    trace_id: str
    client_span: str
    request_id: str
    text: str
    usage: dict[str, int]
    response: httpx.Response


def stream_traced(gw: Gateway, request_id: str) -> Traced:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01", "X-Request-Id": request_id}
    body = {
        "messages": [{"role": "user", "content": f"Tell me about the {PROMPT_MARKER}."}],
        "max_tokens": 12,
        "stop": [STOP_MARKER],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, usage = "", dict[str, int]()
    with httpx.stream("POST", f"{gw.url}/api/v1/chat/completions", json=body, headers=headers, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[len("data: ") :])
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
            usage = chunk.get("usage") or usage
    return Traced(trace_id, client_span, request_id, text, usage, r)


def complete(spans: list[ReceivedSpan]) -> bool:
    names = {s.name for s in spans}
    return {CHAT_ROUTE, "admission", "engine", "llm_request"} <= names


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    found: dict[str, ReceivedSpan] = {}
    for s in spans:
        assert s.name not in found, f"two {s.name} spans in one trace"
        found[s.name] = s
    return found


def test_a_streamed_request_is_one_trace_from_gateway_into_engine(traced: Gateway, receiver: Receiver) -> None:
    t = stream_traced(traced, "trace-test-1")
    spans = by_name(receiver.wait_for(t.trace_id, complete))
    request, admission, engine, llm = (spans[n] for n in (CHAT_ROUTE, "admission", "engine", "llm_request"))

    assert {request.service, admission.service, engine.service} == {"mistral-local"}
    assert llm.service == "mistral-local-engine"
    # One tree: the client's span, the gateway's request, its steps, and vLLM's request under the engine call.
    assert request.parent_id == t.client_span
    assert admission.parent_id == engine.parent_id == request.span_id
    assert llm.parent_id == engine.span_id
    # In order: admitted, then the engine called, then vLLM received it; each ends inside its parent.
    assert request.start_ns <= admission.start_ns <= admission.end_ns <= engine.start_ns <= llm.start_ns
    assert llm.end_ns <= engine.end_ns <= request.end_ns
    first, end = (next(e.time_ns for e in engine.events if e.name == n) for n in ("first_token", "stream_end"))
    assert engine.start_ns < first <= end <= engine.end_ns

    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["mistral_local.request_id"] == t.request_id
    assert request.attributes["gen_ai.usage.input_tokens"] == t.usage["prompt_tokens"]
    assert request.attributes["gen_ai.usage.output_tokens"] == t.usage["completion_tokens"]
    assert request.attributes["mistral_local.outcome"] == "completed"
    assert request.attributes["mistral_local.streamed"] is True
    assert llm.attributes["gen_ai.usage.completion_tokens"] == t.usage["completion_tokens"]
    assert t.request_id in llm.attributes["gen_ai.request.id"]

    # No text: not the prompt, not the stop string, not the answer.
    exported = [text for s in spans.values() for text in s.strings()]
    assert t.text.strip(), "the engine said nothing"
    for secret in (PROMPT_MARKER, STOP_MARKER, t.text.strip()):
        assert not [x for x in exported if secret in x], secret


def test_the_request_id_ties_the_response_and_both_logs(traced: Gateway, receiver: Receiver) -> None:
    t = stream_traced(traced, "trace-test-2")
    assert t.response.headers["x-request-id"] == t.request_id
    receiver.wait_for(t.trace_id, complete)  # the engine has finished the request: its log lines are out
    lines = [json.loads(x) for x in traced.log_path.read_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x["request_id"] == t.request_id]
    assert any(x["logger"] == "mistral_local.access" and CHAT_ROUTE.split()[1] in x["msg"] for x in mine)
    engine_lines = [x["msg"] for x in mine if x["logger"] == "mistral_local.engine"]
    assert any("Received request" in m and t.request_id in m for m in engine_lines), engine_lines
    # vLLM's line lists the sampling parameters (the stop strings among them): cut, as every prompt text is.
    assert not [x for x in lines if STOP_MARKER in x["msg"] or PROMPT_MARKER in x["msg"]]


def test_every_worker_traces(traced: Gateway, receiver: Receiver) -> None:
    """Requests on connections of their own, which the kernel spreads over the two workers (all 16 on one: a chance
    of 1 in 2^15): each is its own complete trace, and both workers' processes export."""
    traces = [stream_traced(traced, f"trace-worker-{i}") for i in range(16)]
    pids = set()
    for t in traces:
        request = by_name(receiver.wait_for(t.trace_id, complete))[CHAT_ROUTE]
        assert request.attributes["mistral_local.request_id"] == t.request_id
        pids.add(request.resource["process.pid"])
    assert len(pids) == 2
