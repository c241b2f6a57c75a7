"""The engine dies (SIGKILL); the gateway answers 503 meanwhile, restarts it, and serves again by itself."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import openai
import pytest

from server.settings import OPENROUTER_MODEL_ID
from tests.e2e.test_metrics import gateway_in_flight
from tests.gateway_process import Gateway, wait_gone

pytestmark = [pytest.mark.engine, pytest.mark.disruptive]


# ignore_eos: both still generate when the engine is killed (an early end would skip what the test checks).
LONG = {
    "messages": [{"role": "user", "content": "Write a long story"}],
    "max_tokens": 3000,
    "temperature": 1.0,
    "ignore_eos": True,
}


def in_flight(gateway: Gateway) -> tuple[ThreadPoolExecutor, Future[httpx.Response], Future[list[str]]]:
    """A long non-streaming request and a long stream, both generating on the engine."""

    def stream() -> list[str]:
        with httpx.stream(
            "POST", f"{gateway.url}/api/v1/chat/completions", json=LONG | {"stream": True}, timeout=60
        ) as r:
            return [line for line in r.iter_lines() if line.startswith("data:")]

    pool = ThreadPoolExecutor(2)
    plain = pool.submit(httpx.post, f"{gateway.url}/api/v1/chat/completions", json=LONG, timeout=60)
    streamed = pool.submit(stream)
    deadline = time.monotonic() + 30
    while gateway_in_flight(gateway) < 2:
        assert time.monotonic() < deadline, "requests never started"
        time.sleep(0.1)
    time.sleep(1)  # admitted at the gateway; give them time to reach the engine
    return pool, plain, streamed


def test_engine_killed_comes_back_without_gateway_restart(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway_pid = gateway.proc.pid
    before = httpx.get(f"{gateway.url}/health/ready").json()["engine"]["restarts"]
    old_engine = gateway.engine_api_server()
    old_tree = [p for p in gateway.tree() if p.pid != gateway_pid]
    pool, plain, streamed = in_flight(gateway)
    old_engine.kill()

    # In flight: the plain request is a 502 in OpenRouter's shape, the stream ends with the error chunk. Usually at
    # once; at worst when the supervisor's health checks give up on the engine (3 checks, 5 s apart, 10 s each).
    assert plain.result(timeout=60).status_code == 502
    assert plain.result().json()["error"]["code"] == 502
    lines = streamed.result(timeout=30)
    last = json.loads(lines[-1][6:])
    assert last["error"]["code"] == 502 and last["choices"][0]["finish_reason"] == "error"
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

    # The old engine's processes are all gone, none left behind by the crash.
    assert not wait_gone([p for p in old_tree if p.pid != old_engine.pid], timeout_s=30)

    health = gateway.wait_ready(timeout_s=400)
    assert health["engine"]["restarts"] == before + 1  # type: ignore[index]
    assert gateway.proc.pid == gateway_pid
    assert gateway.proc.poll() is None
    r = client.chat.completions.create(
        model=OPENROUTER_MODEL_ID, max_tokens=4, messages=[{"role": "user", "content": "back?"}]
    )
    assert r.choices[0].message.content is not None
