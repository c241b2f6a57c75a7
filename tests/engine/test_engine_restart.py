"""The engine dies (SIGKILL); the gateway answers 503 meanwhile, restarts it, and serves again by itself; a gateway
of two workers attached to the same engine ends its stream with an error chunk, answers 503, and serves again once
the engine is back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from server.settings import OPENROUTER_MODEL_ID
from tests.support.engine_requests import gateway_in_flight, running_requests
from tests.support.gateway_process import ENGINE_KEY, Gateway, attached_gateway, wait_gone

pytestmark = [pytest.mark.engine, pytest.mark.disruptive]


# ignore_eos: both still generate when the engine is killed (an early end would skip what the test checks).
LONG = {
    "messages": [{"role": "user", "content": "Write a long story"}],
    "max_tokens": 3000,
    "temperature": 1.0,
    "ignore_eos": True,
}


def stream(url: str) -> list[str]:
    with httpx.stream("POST", f"{url}/api/v1/chat/completions", json=LONG | {"stream": True}, timeout=60) as r:
        return [line for line in r.iter_lines() if line.startswith("data:")]


def in_flight(
    gateway: Gateway, workers: Gateway
) -> tuple[ThreadPoolExecutor, Future[httpx.Response], Future[list[str]], Future[list[str]]]:
    """A long non-streaming request and a long stream, both generating on the engine; and a long stream through the
    workers' gateway."""
    pool = ThreadPoolExecutor(3)
    plain = pool.submit(httpx.post, f"{gateway.url}/api/v1/chat/completions", json=LONG, timeout=60)
    streamed, through_workers = pool.submit(stream, gateway.url), pool.submit(stream, workers.url)
    deadline = time.monotonic() + 60
    # All three generating on the engine itself (admitted at a gateway is not yet there).
    while gateway_in_flight(gateway) < 2 or gateway_in_flight(workers) < 1 or running_requests(gateway) < 3:
        assert time.monotonic() < deadline, "requests never reached the engine"
        time.sleep(0.1)
    return pool, plain, streamed, through_workers


@pytest.fixture
def workers(gateway: Gateway) -> Iterator[Gateway]:
    """Two gateway workers in front of the session gateway's engine."""
    with attached_gateway("gateway-workers-restart", gateway, ENGINE_KEY, {"MISTRAL_LOCAL_WORKERS": "2"}) as gw:
        yield gw


def error_chunk(lines: list[str]) -> dict[str, Any]:
    last: dict[str, Any] = json.loads(lines[-1][6:])
    assert last["error"]["code"] == 502 and last["choices"][0]["finish_reason"] == "error"
    return last


@pytest.mark.timeout(600)  # an engine start (up to 240 s) and the health checks that notice the death
def test_engine_killed_comes_back_without_gateway_restart(
    gateway: Gateway, workers: Gateway, client: openai.OpenAI
) -> None:
    gateway_pid = gateway.proc.pid
    before = httpx.get(f"{gateway.url}/health/ready").json()["engine"]["restarts"]
    old_engine = gateway.engine_api_server()
    old_tree = [p for p in gateway.tree() if p.pid != gateway_pid]
    pool, plain, streamed, through_workers = in_flight(gateway, workers)
    old_engine.kill()

    # In flight: the plain request is a 502 in OpenRouter's shape, the stream ends with the error chunk. Usually at
    # once; at worst when the supervisor's health checks give up on the engine (3 checks, 5 s apart, 10 s each).
    assert plain.result(timeout=60).status_code == 502
    assert plain.result().json()["error"]["code"] == 502
    error_chunk(streamed.result(timeout=30))
    error_chunk(through_workers.result(timeout=30))
    pool.shutdown()

    # While it is down: readiness and requests are 503 with Retry-After, in OpenRouter's error shape.
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.url}/health/ready").status_code == 200:
        assert time.monotonic() < deadline, "readiness never turned 503"
        time.sleep(0.2)
    down = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": OPENROUTER_MODEL_ID, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert down.status_code == 503
    assert down.headers["retry-after"].isdigit()
    assert down.json()["error"]["code"] == 503
    deadline = time.monotonic() + 60  # the attached engine's health checks notice it too
    while httpx.get(f"{workers.url}/health/ready").status_code == 200:
        assert time.monotonic() < deadline, "the workers' gateway never turned 503"
        time.sleep(0.2)

    # The old engine's processes are all gone, none left behind by the crash.
    assert not wait_gone([p for p in old_tree if p.pid != old_engine.pid], timeout_s=30)

    health = gateway.wait_ready()
    assert health["engine"]["restarts"] == before + 1  # type: ignore[index]
    assert gateway.proc.pid == gateway_pid
    assert gateway.proc.poll() is None
    r = client.chat.completions.create(
        model=OPENROUTER_MODEL_ID, max_tokens=4, messages=[{"role": "user", "content": "back?"}]
    )
    assert r.choices[0].message.content is not None
    # The workers' gateway serves again on its own (six requests, each on a connection of its own).
    workers.wait_ready(timeout_s=120)
    back = [httpx.post(f"{workers.url}/api/v1/chat/completions", json=LONG | {"max_tokens": 2}, timeout=60)
            for _ in range(6)]  # fmt: skip
    assert [b.status_code for b in back] == [200] * 6
