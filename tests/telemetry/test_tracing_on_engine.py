"""Traces and logs that tie together, against the real engine: a gateway with two workers and tracing on exports to a
real OTLP receiver (tests/support/otlp_receiver.py), and so does the engine it launched (the session's Magistral
gateway). A streamed request gives one trace of the gateway's own, linked to the client's `traceparent` (never
adopting it), whose spans come from the gateway and the engine in order, with no prompt, reasoning or completion
text, nor an error's message, in them; its request id is in the response, the gateway's log lines and the engine's."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import Gateway
from tests.support.otlp_receiver import ReceivedSpan, Receiver

pytestmark = pytest.mark.engine

PROMPT_MARKER = "zebra-quokka-7431"
STOP_MARKER = "STOPWORD-5580"
HOST_MARKER = "canaryhost-zz"
CHAT_ROUTE = "POST /api/v1/chat/completions"


@pytest.fixture(scope="module")
def receiver(otlp: Receiver) -> Receiver:
    return otlp


@pytest.fixture(scope="module")
def traced(magistral: Gateway) -> Gateway:
    """The session's Magistral gateway (tests/conftest.py): two workers, tracing on, JSON logs."""
    return magistral


@dataclass
class Traced:
    trace_id: str  # the gateway's trace
    client_trace: str
    client_span: str
    request_id: str
    text: str
    usage: dict[str, int]
    response: httpx.Response


def stream_traced(gw: Gateway, receiver: Receiver, request_id: str, flags: str = "01") -> Traced:
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{client_trace}-{client_span}-{flags}", "X-Request-Id": request_id}
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
    return Traced(receiver.linked_to(client_trace), client_trace, client_span, request_id, text, usage, r)


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
    t = stream_traced(traced, receiver, "trace-test-1")
    spans = by_name(receiver.wait_for(t.trace_id, complete))
    request, admission, engine, llm = (spans[n] for n in (CHAT_ROUTE, "admission", "engine", "llm_request"))

    assert {request.service, admission.service, engine.service} == {"mistral-local"}
    assert llm.service == "mistral-local-engine"
    # One tree of the gateway's own, its root linked to the client's span: the gateway's request, its steps, and
    # vLLM's request under the engine call. The client's trace id is never the gateway's.
    assert request.parent_id == "" and request.links == [(t.client_trace, t.client_span)]
    assert t.trace_id != t.client_trace and not receiver.trace(t.client_trace)
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
    t = stream_traced(traced, receiver, "trace-test-2")
    assert t.response.headers["x-request-id"] == t.request_id
    receiver.wait_for(t.trace_id, complete)  # the engine has finished the request: its log lines are out
    lines = [json.loads(x) for x in traced.log_path.read_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x["request_id"] == t.request_id]
    assert any(x["logger"] == "mistral_local.access" and CHAT_ROUTE.split()[1] in x["msg"] for x in mine)
    engine_lines = [x["msg"] for x in mine if x["logger"] == "mistral_local.engine"]
    assert any("Received request" in m and t.request_id in m for m in engine_lines), engine_lines
    # vLLM's line lists the sampling parameters (the stop strings among them): cut, as every prompt text is.
    assert not [x for x in lines if STOP_MARKER in x["msg"] or PROMPT_MARKER in x["msg"]]


def test_reasoning_is_neither_in_the_trace_nor_in_the_logs(traced: Gateway, receiver: Receiver) -> None:
    """Reasoning is request content: an answer with reasoning (the `think` preset, tests/conftest.py) leaves its
    reasoning out of every span, the gateway's log lines and the engine's."""
    client_trace = secrets.token_hex(16)
    headers = {"traceparent": f"00-{client_trace}-{secrets.token_hex(8)}-01", "X-Request-Id": "trace-reasoning"}
    body = {"model": "@preset/think", "messages": [{"role": "user", "content": "Think."}], "max_tokens": 8}
    reasoning = ""
    with httpx.stream("POST", f"{traced.url}/api/v1/chat/completions", json=body | {"stream": True}, headers=headers,
                      timeout=120) as r:  # fmt: skip
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                reasoning += "".join(c["delta"].get("reasoning") or "" for c in json.loads(line[6:])["choices"])
    assert len(reasoning.strip()) > 1, "no reasoning to look for"
    spans = receiver.wait_for(receiver.linked_to(client_trace), complete)
    assert not [x for s in spans for x in s.strings() if reasoning.strip() in x]
    lines = [json.loads(x) for x in traced.log_path.read_text().splitlines() if x.startswith("{")]
    assert [x for x in lines if x["request_id"] == "trace-reasoning"], "no log line of the request"
    assert not [x for x in lines if reasoning.strip() in x["msg"]]


def test_every_worker_traces(traced: Gateway, receiver: Receiver) -> None:
    """Requests on connections of their own, which the kernel spreads over the two workers (all 16 on one: a chance
    of 1 in 2^15): each is its own complete trace, and both workers' processes export."""
    traces = [stream_traced(traced, receiver, f"trace-worker-{i}") for i in range(16)]
    pids = set()
    for t in traces:
        request = by_name(receiver.wait_for(t.trace_id, complete))[CHAT_ROUTE]
        assert request.attributes["mistral_local.request_id"] == t.request_id
        pids.add(request.resource["process.pid"])
    assert len(pids) == 2


def test_a_client_cannot_switch_its_tracing_off(traced: Gateway, receiver: Receiver) -> None:
    """A `traceparent` whose sampled flag is off still gives the gateway's full trace (it used to give none)."""
    t = stream_traced(traced, receiver, "trace-unsampled", flags="00")
    assert complete(receiver.wait_for(t.trace_id, complete))


def test_a_failed_step_says_its_error_type_only(traced: Gateway, receiver: Receiver) -> None:
    """An image on a host the image policy refuses: the span of the failed step says the error's type, never its
    message (which names the host), and no span records an exception."""
    client_trace = secrets.token_hex(16)
    headers = {"traceparent": f"00-{client_trace}-{secrets.token_hex(8)}-01"}
    image = {"type": "image_url", "image_url": {"url": f"http://{HOST_MARKER}.example/cat.png"}}
    body = {"messages": [{"role": "user", "content": [image]}], "max_tokens": 4}
    r = httpx.post(f"{traced.url}/api/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert r.status_code == 400 and HOST_MARKER in r.json()["error"]["message"]
    spans = by_name(
        receiver.wait_for(
            receiver.linked_to(client_trace), lambda s: {"image_fetch", CHAT_ROUTE} <= {x.name for x in s}
        )
    )
    assert spans["image_fetch"].status_code == 2 and spans["image_fetch"].status_message == "InvalidImage"
    assert not [e for s in spans.values() for e in s.events if e.name == "exception"]
    assert not [x for s in spans.values() for x in s.strings() if HOST_MARKER in x]


def test_the_engine_keeps_its_sockets_in_its_private_directory(traced: Gateway) -> None:
    """vLLM's ZMQ sockets were in /tmp, outside the 0700 directory of the engine's HTTP socket."""
    engine = traced.engine_api_server()
    private = {Path(p).parent for p in engine.cmdline() if p.endswith(".sock")}
    assert len(private) == 1 and oct(next(iter(private)).stat().st_mode & 0o777) == "0o700"
    listening = [c.laddr for p in [engine, *engine.children(recursive=True)] for c in p.net_connections("unix")]
    listening = [a for a in listening if a]
    assert listening and all(Path(a).parent in private for a in listening), listening
