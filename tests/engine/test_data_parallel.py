"""Data parallel 2 on CPU: vLLM's own replicas and load balancer behind the gateway. Both replicas serve, and each
gives the same greedy tokens as the single-replica engine."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from server.serving import free_port
from tests.support.engine_requests import greedy
from tests.support.gateway_process import Gateway, start_gateway
from tests.support.helpers import metric

pytestmark = pytest.mark.engine
REQUESTS = 8


def served(engine_port: int, engine_key: str) -> list[float]:
    """Requests each replica finished, from the engine's own metrics (labelled by data-parallel rank)."""
    headers = {"Authorization": f"Bearer {engine_key}"}
    metrics = httpx.get(f"http://127.0.0.1:{engine_port}/metrics", headers=headers).text
    return [metric(metrics, "vllm:request_success_total", engine=str(rank)) for rank in (0, 1)]


def test_dp2_spreads_requests_over_both_replicas(gateway: Gateway, client: openai.OpenAI) -> None:
    engine_port, engine_key = free_port(), secrets.token_urlsafe(24)
    dp2 = start_gateway(
        "gateway-dp2",
        "--profile",
        "cpu-tiny-dp2",
        "--engine-port",
        str(engine_port),
        env={"MISTRAL_LOCAL_ENGINE_API_KEY": engine_key},
    )
    try:
        dp2.wait_ready()
        before = served(engine_port, engine_key)  # the readiness probe generated too
        dp2_client = openai.OpenAI(base_url=f"{dp2.url}/v1", api_key="unused", max_retries=0, timeout=120)
        body = {"messages": [{"role": "user", "content": "Count to ten"}], "max_tokens": 24}
        with ThreadPoolExecutor(REQUESTS) as pool:
            codes = list(
                pool.map(
                    lambda _: httpx.post(f"{dp2.url}/api/v1/chat/completions", json=body, timeout=120), range(REQUESTS)
                )
            )
        assert [r.status_code for r in codes] == [200] * REQUESTS
        after = served(engine_port, engine_key)
        per_replica = [a - b for a, b in zip(after, before, strict=True)]
        assert sum(per_replica) == REQUESTS and min(per_replica) > 0, per_replica
        with dp2_client:
            assert greedy(dp2_client) == greedy(client)
    finally:
        dp2.stop()
