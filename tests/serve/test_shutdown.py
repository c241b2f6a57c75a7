"""SIGTERM drains: readiness turns 503 at once, new requests get 503, requests in flight finish, then the engine
stops and no process is left. Disruptive: it ends the session's gateway, so it runs last."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.engine_requests import STREAM_TOKENS, stream_story, wait_for_drain
from tests.support.gateway_process import Gateway, wait_gone

pytestmark = [pytest.mark.engine, pytest.mark.disruptive]

# Nearly the whole 4096-token context: the stream must outlive the drain checks even on a fast machine whose two cores
# are so busy decoding that the gateway answers those checks slowly (CI once needed longer than 1500 tokens took).


def test_sigterm_drains_then_stops_everything(gateway: Gateway) -> None:
    tree = gateway.tree()
    started = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(stream_story, gateway.url, started)
        assert started.wait(timeout=60), in_flight.exception(timeout=0) if in_flight.done() else "no first chunk"
        gateway.proc.send_signal(signal.SIGTERM)
        ready = wait_for_drain(gateway.url)
        assert ready.json()["error"]["message"] == "Server is shutting down"
        refused = httpx.post(
            f"{gateway.url}/api/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        checked_at = time.monotonic()
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        chunks, ended_at = in_flight.result(timeout=300)
    # The stream outlived the checks above and still ended whole: a finish reason and the usage of every token.
    assert ended_at > checked_at
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]  # type: ignore[index]
    assert finish[-1] == "length"
    usage = chunks[-1]["usage"]
    assert isinstance(usage, dict) and usage["completion_tokens"] == STREAM_TOKENS
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status says "terminated by SIGTERM".
    assert gateway.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert not wait_gone(tree[1:], timeout_s=30)
