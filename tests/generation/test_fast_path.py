"""The fast path never changes what a client sees: for the same engine output, byte for byte, with tools, logprobs,
several choices, legacy completions, errors and usage; nor do gateway worker processes. The engine output is the
real engine's, recorded here."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from server.engine.vllm_release import PINNED
from server.generation.outbound import Envelope, Pricing
from server.generation.stream import PLAIN_DELTA, StreamOutcome, relay, shaper_for
from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import ENGINE_KEY, Gateway, start_gateway
from tests.support.helpers import WEATHER_TOOL
from tests.support.loopback_http import serve_http

pytestmark = pytest.mark.engine

MESSAGES = [{"role": "user", "content": "Tell me a story about the sea"}]
STREAM = {"stream": True, "stream_options": {"include_usage": True}}
# What the gateway sends the engine for each kind of request (server/generation/inbound.py), keyed by a case name.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 64, "temperature": 1.0, "seed": 1}),
    "tools": (
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "Weather in Rome?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0,
            "max_tokens": 48,
            "seed": 2,
        },
    ),
    "logprobs": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "max_tokens": 16, "logprobs": True, "top_logprobs": 2, "seed": 3},
    ),
    "two_choices": ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 16, "n": 2, "seed": 4}),
    "legacy": ("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 32, "seed": 5}),
}
# The recorded error cases answer requests with these seeds.
ERROR_STREAM_SEED, REFUSED_SEED = 7, 8
MID_STREAM_ERROR = b'data: {"error": {"message": "engine crashed", "type": "InternalServerError", "code": 500}}\n\n'


@dataclass
class Recorded:
    path: str
    payload: dict[str, Any]
    status: int
    body: bytes


def engine_call(engine: str, model: str, path: str, payload: dict[str, Any]) -> Recorded:
    full = {"model": model, **payload}
    headers = {"authorization": f"Bearer {ENGINE_KEY}"}
    response = httpx.post(f"{engine}{path}", json=full, headers=headers, timeout=300)
    return Recorded(path, full, response.status_code, response.content)


@pytest.fixture(scope="module")
def recorded(gateway: Gateway) -> dict[str, Recorded]:
    """Real engine answers, streamed and not, for every case; plus one cut by an error and one refused."""
    engine = f"http://127.0.0.1:{gateway.engine_port}"
    model = httpx.get(f"{engine}/v1/models", headers={"authorization": f"Bearer {ENGINE_KEY}"}).json()["data"][0]
    out: dict[str, Recorded] = {}
    for name, (path, payload) in CASES.items():
        out[f"{name}-stream"] = engine_call(engine, model["id"], path, {**payload, **STREAM})
        out[name] = engine_call(engine, model["id"], path, payload)
    cut = out["plain-stream"]
    events = cut.body.split(b"\n\n")
    body = b"\n\n".join(events[:6]) + b"\n\n" + MID_STREAM_ERROR
    out["error-stream"] = Recorded(cut.path, {**cut.payload, "seed": ERROR_STREAM_SEED}, cut.status, body)
    too_long = {"messages": MESSAGES, "max_tokens": 10**6, "seed": REFUSED_SEED}
    out["refused"] = engine_call(engine, model["id"], "/v1/chat/completions", too_long)
    assert all(r.status == 200 for name, r in out.items() if name != "refused")
    assert out["refused"].status == 400
    return out


async def split_reads(body: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    """The body in reads of random sizes, as a socket hands it over (events cut anywhere, or several in one)."""
    at = 0
    while at < len(body):
        step = rng.choice((1, 7, 64, 300, 5000))
        yield body[at : at + step]
        at += step


def relayed(body: bytes, *, fast: bool, text_completion: bool, seed: int) -> tuple[bytes, StreamOutcome]:
    env = Envelope("gen-1-abcdefghijklmnopqrst", 1, "mistralai/mistral-small-3.1-24b-instruct", "Local", PRICING)
    outcome = StreamOutcome()
    shaper = shaper_for(env, outcome, text_completion=text_completion, fast=fast)

    async def collect() -> bytes:
        return b"".join([part async for part in relay(split_reads(body, random.Random(seed)), shaper, 60.0)])

    return asyncio.run(collect()), outcome


PRICING = Pricing.from_strings("0.0000001", "0.0000003")


@pytest.mark.parametrize("case", [f"{name}-stream" for name in CASES] + ["error-stream"])
def test_relay_gives_the_same_bytes_either_way(recorded: dict[str, Recorded], case: str) -> None:
    engine = recorded[case]
    legacy = engine.path == "/v1/completions"
    for seed in range(5):
        fast, fast_outcome = relayed(engine.body, fast=True, text_completion=legacy, seed=seed)
        plain, plain_outcome = relayed(engine.body, fast=False, text_completion=legacy, seed=seed)
        assert fast == plain
        for f in ("usage", "finish_reason", "native_finish_reason", "cancelled", "error"):
            assert getattr(fast_outcome, f) == getattr(plain_outcome, f)
        assert (fast_outcome.first_token_at is None) == (plain_outcome.first_token_at is None)
    assert fast.endswith(b"data: [DONE]\n\n") or case == "error-stream"
    if case == "error-stream":
        assert b'"finish_reason":"error"' in fast and fast_outcome.error is not None


def test_real_text_deltas_take_the_fast_path(recorded: dict[str, Recorded]) -> None:
    """Not a vacuous equality: most chunks of a real answer are rewritten at the byte level."""
    payloads = [e.removeprefix(b"data: ") for e in recorded["plain-stream"].body.split(b"\n\n") if e]
    rewritten = [p for p in payloads if PLAIN_DELTA.fullmatch(p)]
    assert len(rewritten) >= len(payloads) // 2, payloads[:5]


class Replay(BaseHTTPRequestHandler):
    """An engine that answers each request with the real engine's recorded answer, found by seed and stream flag."""

    answers: ClassVar[dict[tuple[int, bool], Recorded]] = {}
    model: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        bodies = {"/health": b"{}", "/version": orjson.dumps({"version": PINNED})}
        body = bodies.get(self.path) or orjson.dumps({"object": "list", "data": [self.model]})
        self._send(200, body, "application/json")

    def do_POST(self) -> None:
        payload = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        if payload.get("prompt") == "ping":  # the readiness probe's one-token generation
            self._send(200, orjson.dumps({"choices": [{"text": "x", "finish_reason": "length"}]}), "application/json")
            return
        found = self.answers[payload["seed"], bool(payload.get("stream"))]
        self._send(found.status, found.body, "text/event-stream" if found.status == 200 else "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateways(recorded: dict[str, Recorded], gateway: Gateway) -> Iterator[tuple[str, str, str]]:
    """Three gateways in front of the replaying engine: fast path on, off, and on in two worker processes. The last
    attaches with no engine key (the replaying engine asks for none): it must still become ready."""
    engine = f"http://127.0.0.1:{gateway.engine_port}"
    Replay.model = httpx.get(f"{engine}/v1/models", headers={"authorization": f"Bearer {ENGINE_KEY}"}).json()["data"][0]
    Replay.answers = {(r.payload["seed"], bool(r.payload.get("stream"))): r for r in recorded.values()}
    with serve_http(Replay) as url:
        keyed = {"MISTRAL_LOCAL_ENGINE_API_KEY": ENGINE_KEY}
        envs = {
            "fast-path-true": {**keyed, "MISTRAL_LOCAL_FAST_PATH": "true"},
            "fast-path-false": {**keyed, "MISTRAL_LOCAL_FAST_PATH": "false"},
            "fast-path-workers": {"MISTRAL_LOCAL_WORKERS": "2"},
        }
        started = [start_gateway(name, "--engine-url", url, env=env) for name, env in envs.items()]
        try:
            for g in started:
                g.wait_ready(timeout_s=60)
            yield started[0].url, started[1].url, started[2].url
        finally:
            for g in started:
                g.stop()


GENERATION_ID = re.compile(rb"gen-\d+-[A-Za-z0-9]{20}")
CREATED = re.compile(rb'"created":\d+')


def client_view(url: str, path: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    """Status, content type and body as a client gets them, with the generation's id and time made constant."""
    response = httpx.post(f"{url}/api{path}", json=body, timeout=120)
    content = CREATED.sub(b'"created":0', GENERATION_ID.sub(b"gen-ID", response.content))
    return response.status_code, response.headers["content-type"], content


def client_requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, (path, payload) in CASES.items():
        for stream in (False, True):
            yield (
                f"{name}{'-stream' if stream else ''}",
                path,
                {"model": OPENROUTER_MODEL_ID, **payload, "stream": stream},
            )
    yield "error-stream", "/v1/chat/completions", {**CASES["plain"][1], "seed": ERROR_STREAM_SEED, "stream": True}
    yield "refused", "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 10, "seed": REFUSED_SEED}


def test_clients_get_the_same_bytes_either_way(gateways: tuple[str, str, str]) -> None:
    fast_url, plain_url, workers_url = gateways
    seen = set()
    for name, path, body in client_requests():
        fast, plain = client_view(fast_url, path, body), client_view(plain_url, path, body)
        assert fast == plain, name
        assert client_view(workers_url, path, body) == fast, name
        seen.add((fast[0], fast[1].split(";")[0]))
        if name.endswith("-stream") and name != "error-stream":
            assert fast[2].endswith(b"data: [DONE]\n\n") and b'"usage":{' in fast[2], name
    assert seen == {(200, "application/json"), (200, "text/event-stream"), (400, "application/json")}
