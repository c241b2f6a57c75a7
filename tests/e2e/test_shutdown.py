"""SIGTERM drains: readiness turns 503 at once, new requests get 503, requests in flight finish, then the engine
stops and no process is left. Disruptive: it ends the session's gateway, so it runs last."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.test_metrics import sample
from tests.gateway_process import Gateway, wait_gone

pytestmark = [pytest.mark.engine, pytest.mark.disruptive]


def gateway_in_flight(gateway: Gateway) -> float:
    """The gateway's own gauge is live (vLLM refreshes its gauges lazily)."""
    return sample(httpx.get(f"{gateway.url}/metrics").text, "mistral_local_in_flight")


def test_sigterm_drains_then_stops_everything(gateway: Gateway) -> None:
    tree = gateway.tree()
    body = {"messages": [{"role": "user", "content": "Tell a story"}], "max_tokens": 400, "temperature": 1.0}
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{gateway.url}/api/v1/chat/completions", json=body, timeout=120)
        deadline = time.monotonic() + 30
        while gateway_in_flight(gateway) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        gateway.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{gateway.url}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["message"] == "Server is shutting down"
        refused = httpx.post(
            f"{gateway.url}/api/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        finished = in_flight.result(timeout=120)
    assert finished.status_code == 200
    assert finished.json()["usage"]["completion_tokens"] == 400
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status says "terminated by SIGTERM".
    assert gateway.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert not wait_gone(tree[1:], timeout_s=30)
